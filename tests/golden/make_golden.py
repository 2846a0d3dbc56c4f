"""Record the golden values of the distributions into ``tests/golden/distributions.npz``.

Run ``python tests/golden/make_golden.py`` only when a change of the recorded values is intended (a
new case in ``golden_cases.py``, or a deliberate change of a distribution's arithmetic or random
stream), and say why in the commit that carries the new file: ``tests/test_golden_distributions.py``
compares the distributions against it.
"""

from __future__ import annotations

import time

import golden_cases


def main() -> None:
    start = time.perf_counter()
    entries = golden_cases.compute_all()
    golden_cases.save(entries)
    size = golden_cases.GOLDEN_FILE.stat().st_size
    print(
        f"wrote {len(entries)} entries to {golden_cases.GOLDEN_FILE} ({size / 1024:.0f} KiB) "
        f"in {time.perf_counter() - start:.1f} s; {golden_cases.meta()}"
    )


if __name__ == "__main__":
    main()
