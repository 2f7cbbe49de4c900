"""Build script for qgt: the Python package plus the C kernel extension.

Run by pip (``pip install -e . --no-build-isolation``) or directly
(``python setup.py build_ext --inplace``).  The extension ``qgt._kern`` is
qgt/_kern.pyx (Cython) over csrc/qgt_kern_*.c.

Compiler flags: -O3 and OpenMP, plus -march=native unless QGT_PORTABLE=1 is
set or the compiler refuses it (the kernels then use the portable vector
width).  csrc/ is compiled with -Wall -Wextra and must stay warning-free;
Cython's generated C is compiled without them (its warnings are not ours).
"""

import glob
import os
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
WARN = ["-Wall", "-Wextra"]


def _accepts(compiler, flags):
    """Whether the compiler builds and links a trivial C file with ``flags``."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as fh:
            fh.write("int main(void) { return 0; }\n")
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=flags)
            compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=flags)
        except Exception:  # any failure means "not accepted"; we fall back
            return False
    return True


class BuildExt(build_ext):
    """Picks flags the compiler accepts and adds the warning flags to csrc/ only."""

    def build_extensions(self):
        cc = self.compiler
        flags = ["-O3", "-std=gnu11"]
        portable = os.environ.get("QGT_PORTABLE", "") not in ("", "0")
        if not portable and _accepts(cc, ["-march=native"]):
            flags.append("-march=native")
        link = []
        if _accepts(cc, ["-fopenmp"]):
            flags.append("-fopenmp")
            link.append("-fopenmp")
        else:
            flags.append("-Wno-unknown-pragmas")
            print("qgt: compiler has no OpenMP; kernels will run on one thread", file=sys.stderr)
        for ext in self.extensions:
            ext.extra_compile_args = flags + ext.extra_compile_args
            ext.extra_link_args = link + ext.extra_link_args
        original = cc._compile

        def _compile(obj, src, ext, cc_args, extra_postargs, pp_opts):
            parts = os.path.abspath(src).split(os.sep)
            if "csrc" in parts[-3:-1]:  # csrc/ and its complex64 build, csrc/f32/
                extra_postargs = list(extra_postargs) + WARN
            return original(obj, src, ext, cc_args, extra_postargs, pp_opts)

        cc._compile = _compile
        super().build_extensions()


kern = Extension(
    "qgt._kern",
    # every kernel twice: complex128 (csrc/) and complex64 (csrc/f32/, QK_SINGLE)
    sources=["qgt/_kern.pyx"] + sorted(glob.glob("csrc/qgt_kern*.c"))
    + sorted(glob.glob("csrc/f32/qgt_kern*.c")),
    include_dirs=["csrc", numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    depends=sorted(glob.glob("csrc/*.h")) + ["qgt/_kern.pxd"],
)

# qgt serve / qgt worker (docs/service.md); tomllib is in Python 3.12's standard library
SERVE = ["fastapi>=0.110", "uvicorn>=0.29", "httpx>=0.27", "nats-py>=2.7", "redis>=5"]
# the simulators `qgt bench --peers` compares with (qgt.bench.peer_run)
PEERS = ["qiskit-aer", "qsimcirq>=0.22", "qulacs>=0.6", "pennylane-lightning>=0.45"]

setup(
    name="qgt",
    version="0.1.0",
    description="MPI-distributed, out-of-core state-vector quantum circuit simulator",
    packages=find_packages(include=["qgt", "qgt.*"]),
    package_data={"qgt": ["*.pxd"]},
    ext_modules=cythonize([kern], language_level=3),
    cmdclass={"build_ext": BuildExt},
    python_requires=">=3.12",
    install_requires=[
        "numpy",
        "Cython",  # build-time only (pip install --no-build-isolation uses the env's)
        "mpi4py",
        "mpich",
        "h5py",
        "qiskit",
        "qiskit-aer",
        "qiskit-qasm3-import",
        "pyhwloc",
        "rich>=13",  # qgt run --progress: the bar on a terminal
        "matplotlib>=3.8",  # qgt timeline
    ],
    extras_require={"test": ["pytest", "pytest-timeout", "ruff", "hypothesis>=6.100",
                             "qiskit-algorithms", "qiskit-machine-learning",
                             "pennylane>=0.45", "pytest-mock", "flaky", *SERVE, *PEERS],
                    "pennylane": ["pennylane>=0.45"],
                    "peers": PEERS,
                    "serve": SERVE},
    entry_points={"console_scripts": ["qgt = qgt.cli:main"],
                  "pennylane.plugins": ["qgt.qubit = qgt.pennylane.device:QgtDevice"]},
)
