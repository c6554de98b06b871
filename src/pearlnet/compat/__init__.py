"""The two course assignments' interfaces as thin adapters over pearlnet.

- ``pearlnet.compat.msu``: the autoencoder assignment (data laid out features x objects).
- ``pearlnet.compat.course``: the "training multilayer networks on NumPy" assignment (batch first).

Both are the one place where the hand-outs' stateful "forward stores, backward reads" style lives;
every derivative they return comes from the autodiff core.
"""
