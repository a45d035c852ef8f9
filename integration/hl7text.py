"""HL7 v2 values read strictly: escape sequences and dates as the standard writes them, or refused.

python-hl7 unescapes leniently: \\XC3A9\\ became two Latin-1 characters instead of one UTF-8 one, an
invalid \\XZZ\\ or an unknown sequence was dropped without a word, and \\.br\\ put a carriage return into
a name. Here a value is taken as written (leaf) and unescaped by unescape(); what it cannot decode is
an error the sender must fix (AE), never a silently different value.
"""

from __future__ import annotations

import datetime
import re

import hl7

HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
# DTM: YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]; a birth date needs the day
DATE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})(?:\.[0-9]{1,4})?)?)?)?"
                  r"(?:[+-]([0-9]{2})([0-9]{2}))?")  # [0-9]: \d also takes other scripts' digits


def leaf(message: hl7.Message, path: str) -> str:
    """The value at an accessor path as written (still escaped), found as python-hl7 finds it (a path that
    stops above a leaf takes the first child); "" where the message has none."""
    key = hl7.Accessor.parse_key(path)
    try:
        node = message.segments(key.segment)[(key.segment_num or 1) - 1]
        if (key.field_num or 1) >= len(node):
            return ""
        node = node(key.field_num or 1)
        indices = [key.repeat_num or 1, key.component_num or 1, key.subcomponent_num or 1]
        while indices:
            if isinstance(node, str):  # a leaf above the path: the value when the rest of the path is all 1s
                return node if set(indices) == {1} else ""
            node = node(indices.pop(0))
    except (KeyError, IndexError):
        return ""
    while not isinstance(node, str):
        node = node(1)
    return node


def unescape(text: str, *, separators: str, esc: str, charset: str) -> str:
    """`text` with its escape sequences replaced: the delimiters (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\), hex data
    (\\Xhh..\\, bytes in the message's `charset`) and highlighting (\\H\\ \\N\\, dropped). Raises ValueError
    for anything else: formatting (\\.br\\), character set switches (\\C..\\ \\M..\\), local (\\Z..\\), invalid
    hex, an escape left open. `separators`: python-hl7's (segment, field, repetition, component,
    subcomponent)."""
    if esc not in text:
        return text
    delimiters = {"F": separators[1], "R": separators[2], "S": separators[3], "T": separators[4], "E": esc}
    out, i = [], 0
    while i < len(text):
        if text[i] != esc:
            out.append(text[i])
            i += 1
            continue
        end = text.find(esc, i + 1)
        if end < 0:
            raise ValueError(f"an escape sequence is not closed ({text[i:i + 12]!r})")
        sequence, i = text[i + 1:end], end + 1
        if sequence in delimiters:
            out.append(delimiters[sequence])
        elif sequence in ("H", "N"):  # highlighting on and off: nothing to keep in plain data
            continue
        elif sequence[:1] == "X" and HEX.fullmatch(sequence[1:]):
            try:
                out.append(bytes.fromhex(sequence[1:]).decode(charset))
            except UnicodeDecodeError:
                raise ValueError(f"the escape sequence {esc}{sequence}{esc} is not {charset} text") from None
        else:
            raise ValueError(f"the escape sequence {esc}{sequence}{esc} is not accepted here: only "
                             f"{esc}F{esc} {esc}S{esc} {esc}T{esc} {esc}R{esc} {esc}E{esc} and {esc}Xhh..{esc}")
    return "".join(out)


def parse_date(text: str) -> datetime.date | None:
    """The date of an HL7 DT/DTM value (the time, when given, is checked and dropped); None when empty.
    Raises ValueError unless it is YYYYMMDD[HH[MM[SS[.S..]]]][+/-ZZZZ] with a real date and time."""
    text = text.strip()
    if not text:
        return None
    match = DATE.fullmatch(text)
    if match is None:
        raise ValueError("a birth date is YYYYMMDD, optionally followed by HHMM[SS] and a zone +/-ZZZZ")
    year, month, day, hour, minute, second, zone_hours, zone_minutes = (
        int(g) if g is not None else 0 for g in match.groups())
    if hour > 23 or minute > 59 or second > 59 or zone_hours > 14 or zone_minutes > 59:
        raise ValueError("the time is not a time of day")
    return datetime.date(year, month, day)  # ValueError for a day that does not exist


# --- what an answer copies from a message -------------------------------------------------------------

OURS = {"F": "|", "S": "^", "R": "~", "T": "&", "E": "\\"}  # the delimiters of every message we write


def reencode(text: str, delimiters: dict, charset: str = "utf-8") -> str:
    """A field as the sender wrote it (with its `delimiters`, named as in OURS) written with ours: its
    components, repetitions and delimiter escapes become ours, our delimiters written as data are escaped,
    and so are control characters (hex); other escape sequences are kept (they mean the same in both),
    and an escape left open is data; `charset` is the answer's (a hex escape names bytes in it). Else a
    control id holding \\F\\ was escaped twice in MSA-2, and with another field separator a sender's
    MSH-3..6 broke our header."""
    name_of = {char: name for name, char in OURS.items()}
    structure = {delimiters[name]: OURS[name] for name in "SRT"}  # components and repetitions stay so
    esc, out, i = delimiters["E"], [], 0
    while i < len(text):
        end = text.find(esc, i + 1) if text[i] == esc else -1
        sequence = text[i + 1:end] if end > 0 else ""
        if sequence and all(c not in name_of and c.isprintable() for c in sequence):
            out.append(f"\\{sequence}\\")  # \F\ ... \E\ name a delimiter in both; \X41\, \H\ mean the same
            i = end + 1
            continue
        char = text[i]
        if char in structure:
            out.append(structure[char])
        elif char in name_of:
            out.append(f"\\{name_of[char]}\\")
        elif not char.isprintable():
            out.append(f"\\X{char.encode(charset, 'replace').hex().upper()}\\")
        else:
            out.append(char)
        i += 1
    return "".join(out)


def delimiters_of(msh_2: str, field_separator: str) -> dict:
    """The sender's delimiters from MSH-1 and MSH-2 (component, repetition, escape, subcomponent), ours
    where MSH-2 is short."""
    given = dict(zip("SRET", msh_2[:4]))
    return {**OURS, **given, "F": field_separator}


def without_msh_7(raw: bytes) -> bytes:
    """A message with its MSH-7 (date/time of message) emptied."""
    if raw[:3] != b"MSH" or len(raw) < 4:
        return raw
    end = min([i for i in (raw.find(b"\r"), raw.find(b"\n")) if i >= 0] or [len(raw)])
    fields = raw[:end].split(raw[3:4])
    if len(fields) > 6:  # fields[0] is "MSH", fields[1] MSH-2: MSH-n is fields[n - 1]
        fields[6] = b""
    return raw[3:4].join(fields) + raw[end:]
