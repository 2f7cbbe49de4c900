"""qgt serve's parser process (qgt.serve.parsing): facts of a circuit, the parser's
message for one that does not parse, and a parser process that dies is replaced."""

from __future__ import annotations

import pytest

from qgt.errors import UserError
from qgt.serve.parsing import Parser

BELL2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[3];\nh q[0];\ncx q[0],q[1];\n'


def test_parser_answers_and_survives_its_process_dying():
    p = Parser()
    try:
        assert p.check(BELL2) == (3, [])
        free = 'OPENQASM 3.0; include "stdgates.inc"; input float a; qubit[1] q; rx(a) q[0];'
        assert p.check(free) == (1, ["a"])
        with pytest.raises(UserError, match="OpenQASM 3 parse error"):
            p.check("OPENQASM 3.0; qubit[1] q; hh q[0];")
        pool = p._shared()
        for proc in list(pool._processes.values()):
            proc.kill()  # as a crash inside qiskit would end it
        assert p.check(BELL2) == (3, [])  # retried alone in a fresh process
        assert p.check(BELL2) == (3, [])  # and the shared pool is back
    finally:
        p.close()
