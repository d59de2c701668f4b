"""Reports over runs: where to look (``loadstack report``), combined HTML reports, comparisons."""
