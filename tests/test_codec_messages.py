"""The codecs' stderr is caught per call, even with calls in parallel threads."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from blurcli.codec_messages import capturing, is_damage, plain, watched


def _prints(text: bytes) -> int:
    os.write(2, text)  # as a C library does: straight to file descriptor 2
    return len(text)


def test_a_line_belongs_to_the_call_that_printed_it() -> None:
    calls = [b"Corrupt JPEG data: bad Huffman code\n" if i % 7 == 3 else b"" for i in range(60)]
    with capturing(), ThreadPoolExecutor(4) as pool:
        seen = list(pool.map(lambda text: watched(lambda: _prints(text))[1], calls))
    for text, lines in zip(calls, seen, strict=True):
        assert lines == ([text.decode().strip()] if text else [])


def test_outside_capturing_a_call_just_runs() -> None:
    assert watched(lambda: 7) == (7, [])


def test_a_line_without_its_newline_is_still_one_line() -> None:
    with capturing():
        assert watched(lambda: _prints(b"libpng error: IDAT: CRC error"))[1] == [
            "libpng error: IDAT: CRC error"
        ]
        assert watched(lambda: 0)[1] == []


def test_which_lines_mean_damage() -> None:
    assert is_damage("Corrupt JPEG data: premature end of data segment")
    assert is_damage("libpng error: IDAT: CRC error")
    assert not is_damage("libpng warning: iCCP: known incorrect sRGB profile")
    # Fuzzing found this one only beside changed pixels: it fails the file.
    assert is_damage("Corrupt JPEG data: 2 extraneous bytes before marker 0xd9")
    assert is_damage("libpng warning: iDAT: CRC error")  # a critical chunk whose name lost a bit
    assert not is_damage("libpng warning: eXIf: duplicate")
    tiff = "[ WARN:0@0.7] global grfmt_tiff.cpp:123 TIFF_Warning TIFFReadDirectory: Sum of Photometric"
    assert not is_damage(tiff) and plain(tiff).startswith("TIFF_Warning")


def test_python_output_and_stray_lines_still_reach_the_terminal() -> None:
    code = (
        "import os, sys, time\n"
        "from blurcli.codec_messages import capturing, watched\n"
        "with capturing():\n"
        "    print('from python', file=sys.stderr)\n"
        "    os.write(2, b'stray C line\\n')\n"
        "    time.sleep(0.3)\n"
        "    watched(lambda: os.write(2, b'Corrupt JPEG data: caught\\n'))\n"
        "print('after', file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, check=True)
    lines = done.stderr.decode().splitlines()
    assert "from python" in lines and "after" in lines and "stray C line" in lines
    assert not any("caught" in line for line in lines)
