"""A model's ``.npz`` streamed: an uncompressed zip of one ``.npy`` member per weight, its
length known before the first byte and memory about the largest weight.

Layout (PKWARE APPNOTE 6.3.10): per member a local header, the name ``layer/weight.npy``,
the ``.npy`` header (format 1.0) and the float32 data, then a data descriptor with the CRC-32
computed while the data went out (flag bit 3: each weight is generated once); then the central
directory and its end record. Members, offsets or counts past the classic zip limits get zip64
fields (4.5.3) and the zip64 end records. Every timestamp is 1980-01-01 00:00, so the same
model gives the same bytes in any process. ``numpy.load`` and ``zipfile`` read the sizes and
CRCs from the central directory.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from app.models.artifacts import weight_values
from app.models.spec import ModelPlan, Weight

_LIMIT_32 = 0xFFFFFFFF  # the classic fields' ceiling; at or past it, zip64
_LIMIT_16 = 0xFFFF
_DOS_TIME, _DOS_DATE = 0, (0 << 9) | (1 << 5) | 1  # 1980-01-01 00:00:00
_FLAGS = 0x08 | 0x800  # sizes and CRC in a data descriptor; names in UTF-8
_STORED = 0
_MEMBER_ATTRS = 0o100644 << 16  # a regular file, rw-r--r--


def npy_header(shape: tuple[int, ...]) -> bytes:
    """The ``.npy`` 1.0 header of a C-order little-endian float32 array of ``shape``."""
    buffer = io.BytesIO()
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


@dataclass(frozen=True)
class _Member:
    weight: Weight
    name: bytes
    header: bytes  # the .npy header
    offset: int  # of its local header
    zip64: bool  # the member's size or offset needs zip64 fields

    @property
    def size(self) -> int:
        return len(self.header) + 4 * self.weight.size

    def local(self) -> bytes:
        # Sizes and CRC are zero here and follow the data (flag bit 3); a zip64 member says
        # so with 0xFFFFFFFF sizes and a zip64 extra field (APPNOTE 4.3.9.2).
        sizes = _LIMIT_32 if self.zip64 else 0
        extra = struct.pack("<HHQQ", 0x0001, 16, 0, 0) if self.zip64 else b""
        fixed = struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            45 if self.zip64 else 20,
            _FLAGS,
            _STORED,
            _DOS_TIME,
            _DOS_DATE,
            0,
            sizes,
            sizes,
            len(self.name),
            len(extra),
        )
        return fixed + self.name + extra

    def descriptor(self, crc: int) -> bytes:
        if self.zip64:
            return struct.pack("<IIQQ", 0x08074B50, crc, self.size, self.size)
        return struct.pack("<IIII", 0x08074B50, crc, self.size, self.size)

    @property
    def span(self) -> int:
        """Bytes from its local header to the end of its data descriptor."""
        extra = 20 if self.zip64 else 0
        return 30 + len(self.name) + extra + self.size + (24 if self.zip64 else 16)

    def central(self, crc: int, limit: int) -> bytes:
        big_size = self.size >= limit
        big_offset = self.offset >= limit
        fields = [self.size] * 2 if big_size else []
        if big_offset:
            fields.append(self.offset)
        extra = (
            struct.pack(f"<HH{len(fields)}Q", 0x0001, 8 * len(fields), *fields) if fields else b""
        )
        fixed = struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            (3 << 8) | 45,  # made by: Unix, zip 4.5
            45 if self.zip64 else 20,
            _FLAGS,
            _STORED,
            _DOS_TIME,
            _DOS_DATE,
            crc,
            _LIMIT_32 if big_size else self.size,
            _LIMIT_32 if big_size else self.size,
            len(self.name),
            len(extra),
            0,
            0,
            0,
            _MEMBER_ATTRS,
            _LIMIT_32 if big_offset else self.offset,
        )
        return fixed + self.name + extra


class NpzLayout:
    """Where every member of a model's ``.npz`` goes; ``limit`` is the zip64 threshold
    (lower only to exercise zip64 with small files)."""

    def __init__(self, plan: ModelPlan, limit: int = _LIMIT_32) -> None:
        self.limit = limit
        self.members: list[_Member] = []
        offset = 0
        for weight in plan.weights:
            header = npy_header(weight.shape)
            size = len(header) + 4 * weight.size
            member = _Member(
                weight,
                f"{weight.name}.npy".encode(),
                header,
                offset,
                zip64=size >= limit or offset >= limit,
            )
            self.members.append(member)
            offset += member.span
        self.directory_offset = offset
        # Every central entry's length is known without the CRCs (4 bytes each).
        self.directory_size = sum(len(m.central(0, limit)) for m in self.members)
        self.zip64 = (
            len(self.members) >= _LIMIT_16
            or self.directory_offset >= limit
            or self.directory_size >= limit
        )

    @property
    def length(self) -> int:
        end = 22 + (56 + 20 if self.zip64 else 0)
        return self.directory_offset + self.directory_size + end

    def _end(self) -> bytes:
        count = len(self.members)
        records = b""
        if self.zip64:
            end64 = self.directory_offset + self.directory_size
            records = struct.pack(
                "<IQHHIIQQQQ",
                0x06064B50,
                44,  # the record's size after this field
                (3 << 8) | 45,
                45,
                0,
                0,
                count,
                count,
                self.directory_size,
                self.directory_offset,
            ) + struct.pack("<IIQI", 0x07064B50, 0, end64, 1)
        return records + struct.pack(
            "<IHHHHIIH",
            0x06054B50,
            0,
            0,
            min(count, _LIMIT_16),
            min(count, _LIMIT_16),
            min(self.directory_size, _LIMIT_32),
            min(self.directory_offset, _LIMIT_32),
            0,
        )

    def chunks(self) -> Iterator[bytes | memoryview]:
        """The archive, a member's pieces at a time (each weight generated once)."""
        crcs = []
        for member in self.members:
            yield member.local()
            yield member.header
            data = weight_values(member.weight).reshape(-1).view(np.uint8).data
            crc = zlib.crc32(data, zlib.crc32(member.header))
            yield data
            del data
            crcs.append(crc)
            yield member.descriptor(crc)
        yield b"".join(m.central(c, self.limit) for m, c in zip(self.members, crcs, strict=True))
        yield self._end()


def npz_stream(plan: ModelPlan) -> tuple[int, Iterator[bytes | memoryview]]:
    """``(Content-Length, chunks)`` of the model's ``.npz``."""
    layout = NpzLayout(plan)
    return layout.length, layout.chunks()
