"""What the CPU offers: its model name, its vector extensions, and whether it computes bfloat16 natively.

bfloat16 matrix products run natively on CPUs with AMX (`amx_bf16`, Intel Sapphire Rapids and later) or with
AVX-512 BF16 dot products (`avx512_bf16`, Intel Cooper Lake, AMD Zen 4 and later); elsewhere PyTorch emulates them
in fp32 arithmetic plus conversions, which is slower than fp32 itself. Read from the kernel's `/proc/cpuinfo`
(Linux); on other systems the model is "unknown" and no extension is reported.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

# The extensions that decide how fast fp32 and bf16 matrix products and attention can run, in the order printed.
VECTOR_EXTENSIONS = (
    "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8",
)
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class CPUInfo:
    model: str
    flags: frozenset[str]

    @property
    def vector_extensions(self) -> list[str]:
        return [flag for flag in VECTOR_EXTENSIONS if flag in self.flags]

    @property
    def native_bf16(self) -> bool:
        """Whether bfloat16 matrix products run on bf16 hardware (AMX or AVX-512 BF16), not emulated."""
        return any(flag in self.flags for flag in NATIVE_BF16_FLAGS)

    @property
    def bf16_summary(self) -> str:
        if "amx_bf16" in self.flags:
            return "native bf16 (AMX tiles)"
        if "avx512_bf16" in self.flags:
            return "native bf16 (AVX-512 BF16 dot products)"
        return "no native bf16: bfloat16 is emulated and slower than fp32"

    def describe(self) -> str:
        extensions = " ".join(self.vector_extensions) or "none of " + " ".join(VECTOR_EXTENSIONS)
        return f"{self.model}; vector extensions: {extensions}; {self.bf16_summary}"


def parse_cpuinfo(text: str) -> CPUInfo:
    """`CPUInfo` of the first processor listed in a `/proc/cpuinfo` text."""
    model, flags = None, None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key in ("flags", "Features") and flags is None:  # x86 / ARM
            flags = frozenset(value.split())
    return CPUInfo(model or platform.processor() or "unknown", flags or frozenset())


def cpu_info(path: str | Path = "/proc/cpuinfo") -> CPUInfo:
    """This machine's `CPUInfo`."""
    try:
        return parse_cpuinfo(Path(path).read_text(errors="replace"))
    except OSError:
        return CPUInfo(platform.processor() or "unknown", frozenset())


__all__ = ["CPUInfo", "cpu_info", "parse_cpuinfo"]
