"""Check that a DICOM file is whole before pydicom reads it.

pydicom reads what it can and stops quietly where a file is cut short: a model
whose file ends inside its Source Instance Sequence reads as whole, with the list
of source images silently shortened, and a length field that claims 4 GB in a
2 kB file makes it try to read (and allocate) that much.  This walk reads only
element headers, skipping every value, and proves that each value fits inside
what contains it: the file, a sequence or item of defined length; that every
sequence or item of undefined length is closed by its delimiter; and that the
file ends exactly where its last element does.  On a 100 MB model it costs a few
hundred header reads, not a pass over the document.

The walk follows pydicom's reading rules (file meta information in explicit VR
little endian, or implicit if its first element says so; the transfer syntax
named there; a data set or an item whose first element contradicts the syntax's
explicit VR read as implicit VR; values of undefined length as items up to a
sequence delimiter), so a file it accepts is read by pydicom completely.
"""

from __future__ import annotations

import struct
import zlib

from pydicom.datadict import dictionary_description, dictionary_VR

#: Explicit VRs whose length is a 4-byte field after 2 reserved bytes (PS3.5 7.1.2).
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_VRS = _LONG_VRS | {
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN",
    b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
}
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_DATA = {0x7FE00008, 0x7FE00009, 0x7FE00010}
#: Deeper nesting than any real object has; refused before pydicom recurses into it.
MAX_DEPTH = 32

IMPLICIT_LITTLE = "1.2.840.10008.1.2"
EXPLICIT_BIG = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"


class StructureError(Exception):
    """What is wrong with the file's structure, as one line (the caller adds the file)."""


def element_name(tag: int) -> str:
    """``Source Instance Sequence (0042,0013)``, or just the tag when it is private or unknown."""
    text = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
    try:
        return f"{dictionary_description(tag)} {text}"
    except KeyError:
        return f"element {text}"


def _looks_explicit(buffer, position: int) -> bool:
    # pydicom's test (filereader._is_implicit_vr): two upper-case letters where an
    # explicit VR stands.
    vr = buffer[position + 4:position + 6]
    return len(vr) == 2 and 0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B


class _Walk:
    def __init__(self, buffer, little: bool, what: str):
        self.buffer = buffer
        self.order = "<" if little else ">"
        self.end_of_file = len(buffer)
        self.what = what
        self.stack: list[str] = []

    def _where(self) -> str:
        # tags and item numbers are kept while walking; names are looked up only for a message
        names = [element_name(entry) if isinstance(entry, int) else entry for entry in self.stack]
        if len(names) > 7:
            names = names[:3] + ["..."] + names[-3:]
        return " > ".join(names) if names else self.what

    def _cut(self, end: int, detail: str) -> StructureError:
        if end == self.end_of_file:
            return StructureError(
                f"the file ends inside {self._where()} ({detail}); it is incomplete, "
                "cut short in copying or transfer: copy or send it again"
            )
        return StructureError(f"{self._where()} does not fit in the item or sequence that holds it ({detail})")

    def header(self, position: int, end: int, explicit: bool) -> tuple[int, bytes | None, int, int]:
        """(tag, explicit VR or None, value length, header size) of the element at ``position``."""
        if position + 8 > end:
            raise self._cut(end, f"{end - position} bytes left where an element header of 8 or 12 is due")
        group, number = struct.unpack_from(self.order + "HH", self.buffer, position)
        tag = group << 16 | number
        if group == 0xFFFE or not explicit:
            (length,) = struct.unpack_from(self.order + "L", self.buffer, position + 4)
            return tag, None, length, 8
        vr = bytes(self.buffer[position + 4:position + 6])
        if vr in _LONG_VRS:
            if position + 12 > end:
                raise self._cut(end, f"{end - position} bytes left where a 12-byte element header is due")
            (length,) = struct.unpack_from(self.order + "L", self.buffer, position + 8)
            return tag, vr, length, 12
        if vr not in _VRS:
            raise StructureError(
                f"{element_name(tag)} has no valid value representation ({vr!r}); the file is damaged"
            )
        (length,) = struct.unpack_from(self.order + "H", self.buffer, position + 6)
        return tag, vr, length, 8

    def data_set(self, position: int, end: int, explicit: bool, depth: int, delimited: bool,
                 top: bool = False) -> int:
        """Walk the elements from ``position``; returns where the data set ends.

        ``delimited``: an item of undefined length, ended by an item delimiter;
        otherwise the elements must fill ``[position, end)`` exactly.
        """
        if depth > MAX_DEPTH:
            raise StructureError(f"{self._where()} nests sequences more than {MAX_DEPTH} deep; the file is damaged")
        if position + 6 <= end and struct.unpack_from(self.order + "H", self.buffer, position)[0] != 0xFFFE:
            # As pydicom (filereader._is_implicit_vr): a data set whose first element
            # has no explicit VR is read as implicit VR, and only the top level
            # switches from implicit to explicit.
            looks_explicit = _looks_explicit(self.buffer, position)
            if explicit and not looks_explicit:
                explicit = False
            elif top and not explicit and looks_explicit:
                explicit = True
        while True:
            if position == end and not delimited:
                return position
            tag, vr, length, size = self.header(position, end, explicit)
            if tag == ITEM_END:
                if delimited:
                    return position + 8
                raise StructureError(f"an item delimiter stands outside any item in {self._where()}")
            if tag in (ITEM, SEQUENCE_END):
                raise StructureError(f"a sequence item or delimiter stands among the elements of {self._where()}")
            self.stack.append(tag)
            start = position + size
            if length == UNDEFINED:
                if vr is not None and vr not in (b"SQ", b"UN", b"OB", b"OW"):
                    raise StructureError(
                        f"{self._where()} has undefined length, which only a sequence or "
                        "encapsulated pixel data may have; the file is damaged"
                    )
                fragments = tag in PIXEL_DATA or vr in (b"OB", b"OW")
                # PS3.5 6.2.2: items of a UN of undefined length are implicit VR
                position = self.items(start, end, explicit and vr != b"UN", depth, None, fragments)
            else:
                if start + length > end:
                    raise self._cut(end, f"its value is declared as {length} bytes, {end - start} remain")
                if vr == b"SQ" or (vr is None and _implicit_vr(tag) == "SQ"):
                    self.items(start, start + length, explicit, depth, start + length, False)
                position = start + length
            self.stack.pop()

    def items(self, position: int, end: int, explicit: bool, depth: int, stop: int | None,
              fragments: bool) -> int:
        """Walk sequence items from ``position``; ``stop`` is the end of a defined-length
        sequence, or None for one ended by a sequence delimiter."""
        count = 0
        while True:
            if stop is not None and position == stop:
                return position
            if stop is None and position + 8 > end:
                raise self._cut(end, f"after {count} items, no sequence delimiter")
            tag, _vr, length, _size = self.header(position, end, False)
            if tag == SEQUENCE_END:
                if stop is not None:
                    raise StructureError(f"a sequence delimiter ends {self._where()}, whose length is defined")
                return position + 8
            if tag != ITEM:
                raise StructureError(
                    f"{self._where()} holds {element_name(tag)} where an item is due; the file is damaged"
                )
            count += 1
            start = position + 8
            self.stack.append(f"item {count}")
            if length == UNDEFINED:
                if fragments:
                    raise StructureError(f"{self._where()}: a pixel data fragment has undefined length")
                position = self.data_set(start, end, explicit, depth + 1, delimited=True)
            else:
                if start + length > end:
                    raise self._cut(end, f"it is declared as {length} bytes, {end - start} remain")
                if not fragments:
                    self.data_set(start, start + length, explicit, depth + 1, delimited=False)
                position = start + length
            self.stack.pop()


def _implicit_vr(tag: int) -> str | None:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


def check_structure(buffer, decompress_limit: int | None = None) -> str | None:
    """The Transfer Syntax UID of ``buffer`` (a whole DICOM file: bytes or mmap), after
    checking that the file is complete and every declared length fits; else
    :class:`StructureError`.

    ``decompress_limit``: the most bytes a deflated data set may inflate to (checked
    as it inflates, so a deflate bomb is refused without being expanded).
    """
    size = len(buffer)
    if size < 132 or bytes(buffer[128:132]) != b"DICM":
        raise StructureError("not a DICOM file (no 'DICM' after the 128-byte preamble)")
    meta = _Walk(buffer, True, "the file meta information")
    position = 132
    explicit_meta = _looks_explicit(buffer, position)
    syntax = None
    while position + 4 <= size and struct.unpack_from("<H", buffer, position)[0] == 0x0002:
        meta.stack = []
        tag, _vr, length, header = meta.header(position, size, explicit_meta)
        meta.stack = ["the file meta information", tag]
        if length == UNDEFINED:
            raise StructureError(f"{meta._where()} has undefined length; the file is damaged")
        if position + header + length > size:
            raise meta._cut(size, f"its value is declared as {length} bytes, {size - position - header} remain")
        if tag == 0x00020010:
            syntax = bytes(buffer[position + header:position + header + length]).rstrip(b"\0 ").decode("ascii", "replace")
        position += header + length
    if position == size:
        raise StructureError("the file ends after its file meta information: it holds no data set")
    if 0 < size - position < 4:
        raise StructureError("the file ends inside the first element header after the file meta information")
    little, explicit = True, True
    if syntax is None:
        explicit = _looks_explicit(buffer, position)
        little = not (explicit and struct.unpack_from("<H", buffer, position)[0] >= 1024)
    elif syntax == IMPLICIT_LITTLE:
        explicit = False
    elif syntax == EXPLICIT_BIG:
        little = False
    if syntax == DEFLATED:
        inflated = _inflate(buffer, position, decompress_limit)
        _Walk(inflated, True, "the data set").data_set(0, len(inflated), True, 0, False, top=True)
        return syntax
    _Walk(buffer, little, "the data set").data_set(position, size, explicit, 0, False, top=True)
    return syntax


def _inflate(buffer, position: int, limit: int | None) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    inflated, chunk = bytearray(), 1 << 22
    try:
        for start in range(position, len(buffer), chunk):
            data = bytes(buffer[start:start + chunk])
            while data and not inflater.eof:
                # at most ``chunk`` bytes out per call: a deflate bomb is stopped at the limit
                inflated += inflater.decompress(data, chunk)
                if limit is not None and len(inflated) > limit:
                    raise StructureError(
                        f"the deflated data set inflates to more than {limit} bytes from a "
                        f"{len(buffer)}-byte file, beyond any real object or the memory available: "
                        "refused as a deflate bomb"
                    )
                data = inflater.unconsumed_tail
            if inflater.eof:
                left = len(inflater.unused_data) + max(0, len(buffer) - start - chunk)
                if left and not (left == 1 and buffer[len(buffer) - 1] == 0):  # PS3.5 A.5: one pad byte
                    raise StructureError(f"{left} bytes follow the end of the deflated data set")
                break
    except zlib.error as error:
        raise StructureError(f"the deflated data set is damaged ({error})") from None
    if not inflater.eof:
        raise StructureError(
            "the file ends inside its deflated data set; it is incomplete, cut short in copying or "
            "transfer: copy or send it again"
        )
    return inflated
