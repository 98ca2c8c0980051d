"""The edgewise role's filters: every shell step is rendered by edgewise itself
(``edgewise.edge.device.fleet.steps``), the same functions ``edgewise deploy`` runs. Run
ansible-playbook from the environment edgewise is installed in."""

from __future__ import annotations

try:
    from edgewise.edge.device.fleet.steps import FILTERS
except ImportError as e:  # pragma: no cover - a controller without edgewise
    raise ImportError(f"the edgewise role needs edgewise on the Ansible controller ({e}); "
                      "run the ansible-playbook of the environment edgewise is installed in") from None


class FilterModule:
    def filters(self):
        return dict(FILTERS)
