"""Chain users — run the chain files named by the profile's ``chains:`` or ``$LOADSTACK_CHAINS``.

``LOADSTACK_CHAINS=load-testing/chains/order_pipeline.yml:3,load-testing/chains/checkout_branching.yml``
runs two chains with weights 3 and 1.  Chains can also be written in Python
(see docs/chains.md) and mixed with ordinary tasks in one user class.
"""

from loadstack.chains import ChainUser, configured_chains


class ConfiguredChainUser(ChainUser):
    def get_chains(self):
        return configured_chains()
