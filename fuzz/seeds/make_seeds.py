#!/usr/bin/env python3
"""Regenerates fuzz/seeds/<target>/ from the golden transcripts and the multistatus unit tests.

Run from the repository root: python3 fuzz/seeds/make_seeds.py. The seeds are committed; CI
does not run this. Each seed file is named after its source (protocol and transcript number);
regress-* files are inputs that once failed a target and are kept as they are.
"""
import hashlib
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")
UIDS = {"${UID}": "4711@example.com", "${UID2}": "4712@example.com", "${UID3}": "4713@example.com"}


def load(proto, name):
    """The client side of a transcript: a list of (raw bytes, is_raw) client lines."""
    out = []
    with open(os.path.join(ROOT, "protocols", proto, "transcripts", name), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.startswith("C:"):
                continue
            text = line[2:]
            text = text[1:] if text.startswith(" ") else text
            for k, v in UIDS.items():
                text = text.replace(k, v)
            if text.startswith("<raw>"):
                raw = text[5:].replace("\\r", "\r").replace("\\n", "\n").replace("\\t", "\t")
                out.append(raw.encode("latin-1", "replace"))
            else:
                out.append(text.encode("utf-8") + b"\r\n")
    return out


def stream(lines):
    return b"".join(lines)


def split(lines, opens_block):
    """(command lines, blocks): a block starts after a line for which opens_block() is true."""
    commands, blocks, block = [], [], None
    for raw in stream(lines).split(b"\n"):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if block is not None:
            if line == b".":
                blocks.append(b"".join(l + b"\r\n" for l in block))
                block = None
            else:
                block.append(line[1:] if line.startswith(b"..") else line)
        elif line:
            commands.append(line)
            if opens_block(line):
                block = []
    return commands, blocks


def cip_opens(line):
    return line.rstrip().endswith(b"+")


def cap_opens(line):
    words = re.split(rb"[ :]", line.strip())
    return any(w.upper() == b"SENDDATA" for w in words[:2])


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def unfold(text):
    lines = []
    for raw in text.split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line:
            continue
        if line[0] in " \t" and lines:
            lines[-1] += line[1:]
        else:
            lines.append(line)
    return lines


def main():
    # Start over, but keep the regress-* inputs (former failures, added by hand).
    for d in os.listdir(SEEDS):
        if os.path.isdir(os.path.join(SEEDS, d)):
            for f in os.listdir(os.path.join(SEEDS, d)):
                if not f.startswith("regress-"):
                    os.remove(os.path.join(SEEDS, d, f))

    # Codec: header (flags: bit0 bare_lf, bit1 start in block; max_line; max_data_line;
    # max_block/16; chunk seed) + the client's bytes.
    codec = [
        ("cip", "060-draft-session-bill.txt", 0x01, 0x00),
        ("cip", "052-bare-lf.txt", 0x01, 0x03),
        ("cip", "050-bad-input.txt", 0x00, 0x05),
        ("cap", "040-line-limits-and-bare-lf.txt", 0x01, 0x06),
        ("cap", "021-senddata-eager-client.txt", 0x01, 0x02),
        ("cap", "077-payload-forms.txt", 0x01, 0x04),
    ]
    for proto, name, flags, chunks in codec:
        data = stream(load(proto, name))
        for target, max_line in (("framing_line", 80), ("framing_block", 255)):
            header = bytes([flags, max_line, 255, 255, chunks])
            write(target, f"{proto}-{name[:3]}", header + data)
    # A block from the start, with a stuffed dot line and an overlong line.
    write("framing_block", "start-in-block",
          bytes([0x03, 40, 40, 8, 0x02]) + b"UID:1\r\n..x\r\n" + b"y" * 60 + b"\r\n.\r\nNOOP\r\n")

    cip_cmds, cip_blocks, cap_cmds, cap_blocks = set(), [], set(), []
    for name in sorted(os.listdir(os.path.join(ROOT, "protocols", "cip", "transcripts"))):
        c, b = split(load("cip", name), cip_opens)
        cip_cmds.update(c)
        cip_blocks += [(name, x) for x in b]
    for name in sorted(os.listdir(os.path.join(ROOT, "protocols", "cap", "transcripts"))):
        c, b = split(load("cap", name), cap_opens)
        cap_cmds.update(c)
        cap_blocks += [(name, x) for x in b]

    def pick(items, n):
        """n items spread over the sorted list (deterministic)."""
        items = sorted(items, key=lambda x: hashlib.sha1(x if isinstance(x, bytes) else x[1]).hexdigest())
        return items[:n]

    for i, line in enumerate(pick(cip_cmds, 16)):
        write("cip_command", f"cmd-{i:02}", line)
    for i, line in enumerate(pick(cap_cmds, 24)):
        write("cap_command", f"cmd-{i:02}", line)

    # iCalendar text: CIP bodies (vCalendar 1.0 style) and CAP payload bodies.
    for n, b in pick(cip_blocks, 6):
        write("vcal10", f"cip-{n[:3]}-{hashlib.sha1(b).hexdigest()[:6]}", b"\xff\x03" + b)
        write("contentline", f"cip-{n[:3]}-{hashlib.sha1(b).hexdigest()[:6]}", b)
    strict_n, strict_b = pick(cip_blocks, 1)[0]
    write("vcal10", f"strict-{strict_n[:3]}", b"\x00\x00" + strict_b)
    icalendar = []
    for n, b in pick(cap_blocks, 10):
        write("cap_senddata", f"cap-{n[:3]}-{hashlib.sha1(b).hexdigest()[:6]}", b)
        body = b.split(b"\r\n\r\n", 1)[-1]
        if b"BEGIN:" in body:
            icalendar.append((n, body))
    for n, b in icalendar[:4]:
        write("contentline", f"cap-{n[:3]}-{hashlib.sha1(b).hexdigest()[:6]}", b)
        write("contentline_roundtrip", f"cap-{n[:3]}-{hashlib.sha1(b).hexdigest()[:6]}", b)
    for n, b in pick(cip_blocks, 3):
        write("contentline_roundtrip", f"cip-{n[:3]}-{hashlib.sha1(b).hexdigest()[:6]}", b)
    write("contentline_roundtrip", "built",
          b"x-name\0cn\0Doe, \"Jane\"\r\n^\0line one\r\nline two")
    for n, b in pick(cip_blocks, 2) + icalendar[:2]:
        write("fold_unfold", f"{n[:3]}-{hashlib.sha1(b).hexdigest()[:6]}", b)
    write("fold_unfold", "long-multibyte", ("DESCRIPTION:" + "aé日😀\\n;," * 20).encode())

    # SQL-MIN: QUERY values of the CAP transcripts (unfolded, TEXT-unescaped).
    queries = set()
    for _, b in cap_blocks:
        for line in unfold(b.decode("utf-8", "replace")):
            m = re.match(r"(?i)QUERY(;[^:]*)?:(.*)", line)
            if m:
                q = m.group(2).replace("\\,", ",").replace("\\;", ";").replace("\\\\", "\\")
                queries.add(q.encode())
    for i, q in enumerate(pick(queries, 16)):
        write("vquery", f"query-{i:02}", q)

    # XML: the 207 / schedule-response / error bodies of the multistatus unit tests.
    src = open(os.path.join(ROOT, "src", "caldav", "multistatus.rs"), encoding="utf-8").read()
    bodies = [b for b in re.findall(r'r#"(.*?)"#', src, re.S) if "<" in b]
    for i, b in enumerate(bodies[:8]):
        write("multistatus", f"test-body-{i:02}", b.encode())


if __name__ == "__main__":
    main()
