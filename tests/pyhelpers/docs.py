"""The shell commands in the project's Markdown pages, as a reader would copy them.

A fenced block whose language is sh, bash, shell or console holds commands. In a block where some
line starts with `$ `, only those lines are commands (the others are what they print); otherwise
every line is, except comments and the bodies of here-documents. A line ending in a backslash
goes on on the next line. Within a command line, `invocations` finds each call of one program
(`kubectl`, `helm`, ...), also inside `$(...)`, after `|`, `;` or `&&` and in a loop body.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

SHELL_LANGUAGES = {"sh", "bash", "shell", "console"}
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?")


@dataclass(frozen=True)
class Block:
    path: str
    line: int  # 1-based line of the opening fence
    language: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Command:
    path: str
    line: int  # 1-based line where the command starts
    text: str  # continuation lines joined, the trailing comment removed

    def where(self) -> str:
        return f"{self.path}:{self.line}: {self.text}"


def fenced_blocks(text: str, path: str = "<text>") -> list[Block]:
    """Every fenced block of a Markdown text, with its language ('' when it has none)."""
    blocks, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, language, start = m.group(1), m.group(2), i
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        blocks.append(Block(path, start + 1, language, tuple(body)))
        i += 1
    return blocks


def strip_comment(line: str) -> str:
    """The line without an unquoted `#` comment (a `#` that starts a word)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def open_quote(text: str) -> bool:
    """Whether a shell text ends inside a single- or double-quoted string."""
    quote = None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
    return quote is not None


def block_commands(block: Block) -> list[Command]:
    """The commands of one shell block (see the module's doc)."""
    prompt = any(line.startswith("$ ") for line in block.lines)
    commands, pending, pending_line, heredoc_end = [], "", 0, None
    for offset, raw in enumerate(block.lines, start=block.line + 1):
        if heredoc_end is not None:
            if raw.strip() == heredoc_end:
                heredoc_end = None
            continue
        if not pending:
            if prompt:
                if not raw.startswith("$ "):
                    continue
                raw = raw[2:]
            pending_line = offset
        if open_quote(pending):  # a quoted string that spans lines goes on verbatim
            pending += raw + "\n"
            if open_quote(pending):
                continue
            line = ""
        else:
            line = strip_comment(raw)
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        if open_quote(pending + line):
            pending += line + "\n"
            continue
        text = (pending + line).strip()
        pending = ""
        if text:
            commands.append(Command(block.path, pending_line, text))
            m = HEREDOC.search(text)
            if m:
                heredoc_end = m.group(1)
    if pending.strip():
        raise AssertionError(f"{block.path}:{pending_line}: a quote opened here is never closed: {pending[:80]!r}")
    return commands


def shell_commands(text: str, path: str = "<text>") -> list[Command]:
    """Every command in the shell blocks of a Markdown text, in order."""
    return [c for b in fenced_blocks(text, path) if b.language in SHELL_LANGUAGES
            for c in block_commands(b)]


NOTES_PROGRAMS = ("kubectl", "helm", "curl", "export", "echo")


def notes_commands(text: str, path: str = "NOTES.txt") -> list[Command]:
    """The commands in helm's rendered notes: indented lines that start with a program."""
    out = []
    for n, raw in enumerate(text.splitlines(), start=1):
        if raw.startswith(" ") and raw.split() and raw.split()[0] in NOTES_PROGRAMS:
            out.append(Command(path, n, strip_comment(raw).strip()))
    return out


def _command_end(text: str, start: int) -> int:
    """Where the simple command starting at `start` ends: an unquoted ) ; | & or backtick."""
    quote, depth, i = None, 0, start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif text.startswith("$(", i):
            depth += 1
            i += 1
        elif ch == ")":
            if depth == 0:
                return i
            depth -= 1
        elif ch in ";|&`" and depth == 0:
            return i
        i += 1
    return len(text)


def invocations(command: Command, program: str) -> list[list[str]]:
    """Each call of `program` in a command line, split into words as the shell would."""
    calls = []
    for m in re.finditer(rf"(?<![\w./-]){re.escape(program)}(?![\w-])", command.text):
        before = command.text[: m.start()].rstrip()
        # A call starts a command: at the line's start, or after ( | ; & do then and $(
        if before and not re.search(r"(\$\(|[(|;&`]|\bdo|\bthen|\belse)$", before):
            continue
        snippet = command.text[m.start(): _command_end(command.text, m.start())]
        try:
            calls.append(shlex.split(snippet))
        except ValueError as e:
            raise AssertionError(f"{command.where()}: cannot split {snippet!r}: {e}") from None
    return calls


def flag(argv: list[str], *names: str) -> str | None:
    """The value of the first of `names` in a split command line (`-n X` or `--namespace=X`)."""
    for i, word in enumerate(argv):
        for name in names:
            if word == name and i + 1 < len(argv):
                return argv[i + 1]
            if word.startswith(name + "="):
                return word.split("=", 1)[1]
    return None


def markdown_links(text: str) -> list[str]:
    """The targets of the inline links and images of a Markdown text."""
    return re.findall(r"\]\(([^)\s]+)\)", text)


def doc_files(root: Path) -> list[Path]:
    """The Markdown pages a reader follows: README.md, docs/*.md and the chart's README."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md")),
            root / "helm" / "moscow-time" / "README.md"]


def blocks_in(text: str, path: str, start: str, end: str | None = None) -> list[Block]:
    """The shell blocks of a Markdown text from the heading line `start` up to the heading line
    `end` (or to the next heading of the same or a higher level), in order."""
    lines = text.splitlines()
    begin = next(i for i, line in enumerate(lines) if line.strip() == start) + 1
    level = len(start) - len(start.lstrip("#"))
    stop, fenced = len(lines), False
    for i in range(begin, len(lines)):
        line = lines[i].strip()
        if line.startswith("```"):
            fenced = not fenced  # a `# comment` inside a block is not a heading
        if fenced:
            continue
        depth = len(line) - len(line.lstrip("#"))
        if (end and line == end) or (not end and 0 < depth <= level and line[depth:depth + 1] == " "):
            stop = i + 1
            break
    return [b for b in fenced_blocks(text, path)
            if b.language in SHELL_LANGUAGES and begin < b.line < stop]


MARK = "##### block "


def script_of(blocks: list[Block], preamble: str = "", after=None) -> str:
    """One bash script that runs the blocks in order, as a reader pasting them into one terminal
    would, stopping at the first command that fails. Before each block it prints a marker line,
    so `outputs()` can tell which block printed what and a failure names its block. `after(block)`
    may give lines of the harness's own to run after a block (waiting for what a reader would see
    settle before the next step)."""
    parts = ["set -euo pipefail", preamble]
    for b in blocks:
        parts.append(f"echo '{MARK}{b.path}:{b.line}'")
        parts.extend(expected_failure(line) for line in b.lines)
        if after:
            parts.extend(after(b))
    return "\n".join(parts) + "\n"


# A command whose comment says it exits non-zero (`... count   # the same message, exit 1`).
SAYS_IT_FAILS = re.compile(r"#.*\bexit [1-9]\d*\b")


def expected_failure(line: str) -> str:
    """The line as a script runs it: a command the docs say exits non-zero may do so, and then
    says that it did; any other line is unchanged."""
    command = strip_comment(line)
    if command and command != line.rstrip() and SAYS_IT_FAILS.search(line[len(command):]):
        return f"{command} || echo \"(exit $?, as the docs say)\""
    return line


def outputs(stdout: str) -> dict[str, str]:
    """What each block printed, by its `path:line`, from the output of a `script_of` run."""
    out: dict[str, list[str]] = {}
    current = None
    for line in stdout.splitlines():
        if line.startswith(MARK):
            current = line[len(MARK):]
            out[current] = []
        elif current:
            out[current].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def last_block(stdout: str) -> str | None:
    """The block a `script_of` run was in when it stopped."""
    marks = [line[len(MARK):] for line in stdout.splitlines() if line.startswith(MARK)]
    return marks[-1] if marks else None
