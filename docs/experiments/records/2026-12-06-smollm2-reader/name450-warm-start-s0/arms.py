"""Per arm of a vet's episodes: success, invalid actions, steps, thoughts written, places gone to."""
import collections
import json
import re
import sys

records = [json.loads(line) for line in open(sys.argv[1])]
for arm in ("base", "augmented", "placebo"):
    eps = [r for r in records if r["arm"] == arm]
    steps = [s for r in eps for s in r["steps"]]
    thoughts = collections.Counter(
        (m.group(1).strip() if (m := re.search(r"<think>(.*?)</think>", s["answer"], re.S)) else "(none)")
        for s in steps
    )
    invalid = [s for s in steps if not s["valid"]]
    cut = sum("</action>" not in s["answer"] for s in invalid)
    gone = collections.Counter(s["action"].split(" ", 2)[-1] for s in steps if s["action"] and s["action"].startswith("go to"))
    print(f"{arm}: {len(eps)} episodes, success {sum(r['won'] for r in eps) / len(eps):.1%}, "
          f"steps {len(steps)}, {len(steps) / len(eps):.1f} per episode, "
          f"invalid {len(invalid) / len(steps):.1%} ({cut} without a closed action)")
    print("  thoughts:", ", ".join(f"{t!r} {n}" for t, n in thoughts.most_common(4)))
    print("  go to:", ", ".join(f"{p} {n}" for p, n in gone.most_common(6)))
    takes = collections.Counter(s["action"] for s in invalid if (s["action"] or "").startswith("take"))
    print(f"  invalid takes: {sum(takes.values())}; most often:",
          ", ".join(f"{a!r} {n}" for a, n in takes.most_common(3)))
