"""``edgewise fleet``: the rollout of ``edgewise deploy`` on Ansible, for many devices.

The playbook and its role ship in this package (``playbook/``); every shell step the role runs
on a device is rendered by the same functions ``edgewise deploy`` runs over its own SSH
(``steps.py``, through the role's filter plugin), so the two cannot drift apart. Ansible
brings what a fleet needs: its inventories, rolling batches (``serial``), ``max_fail_percentage``,
and its own connection handling.
"""
