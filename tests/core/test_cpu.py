"""CPU model and vector extensions from /proc/cpuinfo, native bf16 detection, on both kinds of development machine."""

from __future__ import annotations

from perceiver_hf.cpu import cpu_info, parse_cpuinfo

AMD_EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu sse sse2 avx fma avx2 avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512_vnni
processor\t: 1
model name\t: AMD EPYC 9R14 96-Core Processor
"""
INTEL_XEON_AMX = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu sse avx fma avx2 avx512f avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8
"""
AVX2_ONLY = """model name\t: AMD EPYC 7R13 Processor
flags\t\t: fpu sse avx fma avx2
"""


def test_extensions_and_native_bf16_per_machine_kind():
    amd, intel, avx2 = (parse_cpuinfo(text) for text in (AMD_EPYC, INTEL_XEON_AMX, AVX2_ONLY))
    assert amd.model == "AMD EPYC 9R14 96-Core Processor"
    assert amd.vector_extensions == ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"]
    assert amd.native_bf16 and "AVX-512 BF16" in amd.bf16_summary
    assert intel.native_bf16 and "AMX" in intel.bf16_summary
    assert "amx_bf16" in intel.vector_extensions and "avx512_fp16" in intel.vector_extensions
    assert not avx2.native_bf16 and "emulated" in avx2.bf16_summary
    assert avx2.vector_extensions == ["avx2", "fma"]


def test_this_machine_and_missing_files(tmp_path):
    info = cpu_info()
    assert info.model and info.describe().startswith(info.model)
    missing = cpu_info(tmp_path / "no-cpuinfo")
    assert missing.flags == frozenset() and not missing.native_bf16
