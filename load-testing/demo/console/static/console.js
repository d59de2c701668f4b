// A user's session on the demo platform, as a browser would run it. Every call waits a
// little first, like a person reading the page, so recordings carry think times.
"use strict";

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (text) => {
  const item = document.createElement("li");
  item.textContent = text;
  document.getElementById("log").appendChild(item);
};

async function call(method, path, body, token) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  log(`${method} ${path} → ${response.status}`);
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}`);
  return response.json();
}

async function session() {
  const params = new URLSearchParams(location.search);
  const think = Number(params.get("think") || 300);
  const suffix = Math.random().toString(36).slice(2, 10);
  const email = `ada-${suffix}@example.test`;
  const password = `pw-${suffix}-Lovelace`;

  await call("GET", "/api/status");
  await pause(think);
  await call("POST", "/api/v1/auth/register", { email, password, name: "Ada Lovelace" });
  await pause(think);
  const login = await call("POST", "/api/v1/auth/login", { email, password });
  const token = login.access_token;
  await pause(think);
  await call("GET", "/api/oscilloscope/config");
  await pause(think);
  const order = await call("POST", "/api/v1/orders", { sku: "scope-200", quantity: 2, amount: 149.9 }, token);
  await pause(think);
  await call("GET", `/api/v1/orders/${order.id}`, undefined, token);
  await pause(think);
  await call("POST", "/api/v1/payments", { order_id: order.id, amount: 149.9, method: "card" }, token);
  await pause(think);
  await call("GET", "/api/v1/payments", undefined, token);
  await call("GET", "/api/v1/orders?limit=5", undefined, token);
}

session().then(
  () => {
    const state = document.getElementById("state");
    state.textContent = "done";
    state.className = "done";
  },
  (error) => {
    const state = document.getElementById("state");
    state.textContent = `failed: ${error.message}`;
    state.className = "failed";
  },
);
