#!/usr/bin/env bash
# test_docs.sh — the project's own documentation stays citable: every
# section of docs/formats.md that a source file, script or README cites
# ("docs/formats.md §3.4", also in the older spelling "FORMATS.md §3.4" and
# in ranges such as "§2.0–2.2") exists as a heading, every section of
# docs/design.md cited by name ("docs/design.md, CUDA without a GPU")
# exists, and every relative link in README.md, HACKING.md and docs/*.md
# points at a file of the repository.
# Prints one line per test and "RESULT passed failed" last.
set -u
cd "$(dirname "$0")/../.."
passed=0; failed=0
T=""
OUT=$(mktemp)
LIST=$(mktemp)
trap 'rm -f "$OUT" "$LIST"' EXIT
fail() { echo "FAIL  $T: $*"; sed 's/^/  /' "$OUT" | head -40; failed=$((failed + 1)); T=""; }
pass() { [ -n "$T" ] && { echo "ok    $T"; passed=$((passed + 1)); }; }

if ! command -v python3 >/dev/null; then
    echo "FAIL  docs: python3 is missing (scripts/test-env.sh installs it)"; echo "RESULT 0 1"; exit 1
fi

# The text files that may cite the docs (fixtures' data files excluded).
sources() {
    find runtime kernels lua tests scripts examples configs -type f \
        \( -name '*.c' -o -name '*.h' -o -name '*.cc' -o -name '*.cu' -o -name '*.cuh' \
        -o -name '*.lua' -o -name '*.py' -o -name '*.sh' -o -name '*.md' -o -name '*.dict' \) \
        ! -path 'tests/cli/test_docs.sh'
    echo README.md; echo HACKING.md; echo Makefile
}
sources >"$LIST"

T="docs: every cited section of docs/formats.md exists"
python3 - docs/formats.md "$LIST" >"$OUT" 2>&1 <<'EOF' || fail "sections cited but missing"
import re, sys
doc = open(sys.argv[1], encoding="utf-8").read()
heads = set(re.findall(r"^#{2,3} ([0-9]+(?:\.[0-9]+)?)\.? ", doc, re.M))
num = r"([0-9]+)(?:\.([0-9]+))?"
rng = re.compile(r"§\s*" + num + r"(?:\s*[-–]\s*" + num + r")?")
missing, seen = [], 0
files = open(sys.argv[2]).read().split()
for path in files:
    try:
        text = open(path, encoding="utf-8").read()
    except (OSError, UnicodeDecodeError):
        continue
    for ln, line in enumerate(text.splitlines(), 1):
        for m in rng.finditer(line):
            a, a2, b, b2 = m.groups()
            want = [a + ("." + a2 if a2 else "")]
            if b is not None:
                if b2 is None:      # "§5-6": sections 5 through 6
                    want += [str(i) for i in range(int(a) + 1, int(b) + 1)]
                elif a2 is not None and a == b:   # "§2.0–2.2"
                    want += ["%s.%d" % (a, i) for i in range(int(a2) + 1, int(b2) + 1)]
                else:
                    want.append(b + "." + b2)
            for w in want:
                seen += 1
                if w not in heads:
                    missing.append("%s:%d: §%s" % (path, ln, w))
print("\n".join(missing) if missing else "%d citations" % seen)
sys.exit(1 if missing or seen == 0 else 0)
EOF
pass

T="docs: every section of docs/design.md cited by name exists"
python3 - docs/design.md "$LIST" >"$OUT" 2>&1 <<'EOF' || fail "sections cited but missing"
import re, sys
doc = open(sys.argv[1], encoding="utf-8").read()
heads = {h.strip().lower() for h in re.findall(r"^#{2,3} (.+)$", doc, re.M)}
cite = re.compile(r"(?:DESIGN\.md|docs/design\.md),\s*\"?([A-Za-z][^\".);\n]*)")
missing, seen = [], 0
files = open(sys.argv[2]).read().split()
for path in files:
    try:
        text = open(path, encoding="utf-8").read()
    except (OSError, UnicodeDecodeError):
        continue
    for ln, line in enumerate(text.splitlines(), 1):
        for m in cite.finditer(line):
            seen += 1
            name = m.group(1).strip().lower()
            if name not in heads:
                missing.append("%s:%d: %s" % (path, ln, m.group(1).strip()))
print("\n".join(missing) if missing else "%d citations" % seen)
sys.exit(1 if missing or seen == 0 else 0)
EOF
pass

T="docs: relative links of README.md, HACKING.md and docs/*.md resolve"
python3 - README.md HACKING.md docs/*.md >"$OUT" 2>&1 <<'EOF' || fail "links to missing files"
import os, re, sys
bad = []
for path in sys.argv[1:]:
    text = open(path, encoding="utf-8").read()
    for ln, line in enumerate(text.splitlines(), 1):
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            file = target.split("#", 1)[0]
            if not os.path.exists(os.path.join(os.path.dirname(path), file)):
                bad.append("%s:%d: %s" % (path, ln, target))
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
pass

echo "RESULT $passed $failed"
[ "$failed" -eq 0 ]
