# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""reStructuredText output for generated documentation pages."""

__all__ = ["grid_table"]


def grid_table(header, rows):
    """
    A reST grid table (no trailing newline).

    Parameters
    ----------
    header : sequence of str
        Column titles.
    rows : iterable of sequences
        Cells, converted with `str`; every row has ``len(header)`` cells.

    Examples
    --------
    >>> from astro_clustercls.utils._rst import grid_table
    >>> print(grid_table(["class", "recall"], [[1, "70 %"], [2, "40 %"]]))
    +-------+--------+
    | class | recall |
    +=======+========+
    | 1     | 70 %   |
    +-------+--------+
    | 2     | 40 %   |
    +-------+--------+
    """
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(row):
        padded = (c.ljust(w) for c, w in zip(row, widths, strict=True))
        return "| " + " | ".join(padded) + " |"

    out = [rule, line(cells[0]), rule.replace("-", "=")]
    for row in cells[1:]:
        out += [line(row), rule]
    return "\n".join(out)
