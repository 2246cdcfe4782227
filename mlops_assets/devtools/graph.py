"""The asset graph as a Mermaid diagram, generated from the Definitions so docs cannot go stale."""

from __future__ import annotations

from pathlib import Path

START, END = "<!-- asset-graph:start -->", "<!-- asset-graph:end -->"


def mermaid() -> str:
    """A Mermaid flowchart of every asset, one subgraph per group, edges from dependencies."""
    from mlops_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    node_id = {k: "n_" + "_".join(k.path).replace("-", "_") for k in keys}
    groups: dict[str, list] = {}
    for key in keys:
        groups.setdefault(graph.get(key).group_name or "default", []).append(key)
    lines = ["```mermaid", "flowchart LR"]
    for group in sorted(groups, key=_group_order):
        lines.append(f"  subgraph {group}")
        lines += [f'    {node_id[k]}["{k.to_user_string()}"]' for k in groups[group]]
        lines.append("  end")
    for key in keys:
        for parent in sorted(graph.get(key).parent_keys, key=lambda k: k.to_user_string()):
            if parent in node_id:
                lines.append(f"  {node_id[parent]} --> {node_id[key]}")
    lines.append("```")
    return "\n".join(lines)


def _group_order(group: str) -> int:
    from mlops_assets.defs import GROUPS

    return GROUPS.index(group) if group in GROUPS else len(GROUPS)


def render_into(path: Path = Path("docs/ARCHITECTURE.md")) -> bool:
    """Write the diagram between the markers; returns True when the file changed."""
    text = path.read_text()
    new = text[: text.index(START) + len(START)] + "\n" + mermaid() + "\n" + text[text.index(END) :]
    if new != text:
        path.write_text(new)
        return True
    return False
