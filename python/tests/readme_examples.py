"""The example programs of README.md, as files: a fenced code block whose
first line is a comment naming a file (`/* adder.c: ...`, `// adder.cpp:`,
`# adder.py:`) is that file. Its comment's lines that start with `cc ` or
`c++ ` are the README's build commands.

    python3 readme_examples.py README.md OUT_DIR    writes the files and
        prints, for each, "FILE<TAB>BUILD COMMAND" (no command: "FILE<TAB>")
"""
import os
import re
import sys

_FENCE = re.compile(r"^```([a-z+]*)\n(.*?)^```", re.M | re.S)
_NAMED = re.compile(r"^(?:/\*|//|#) ([\w.-]+\.(?:c|cpp|py)): ")
_BUILD = re.compile(r"^(?: \*|//|#)\s+((?:cc|c\+\+) .*)$")


def examples(readme_text):
    """{file name: (its text, its build command or None)}, in order."""
    found = {}
    for match in _FENCE.finditer(readme_text):
        body = match.group(2)
        named = _NAMED.match(body)
        if named:
            build = None
            for line in body.splitlines()[1:6]:
                command = _BUILD.match(line)
                if command:
                    build = command.group(1).strip()
            found[named.group(1)] = (body, build)
    return found


def write(readme_path, out_dir):
    with open(readme_path, encoding="utf-8") as f:
        found = examples(f.read())
    os.makedirs(out_dir, exist_ok=True)
    for name, (body, _) in found.items():
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            f.write(body)
    return found


if __name__ == "__main__":
    for file_name, (_, command) in write(sys.argv[1], sys.argv[2]).items():
        print("%s\t%s" % (file_name, command or ""))
