"""dockerpy: a Docker-compatible container engine on Twisted."""
from setuptools import find_packages, setup

setup(
    name="dockerpy",
    version="0.1.0",
    description="A Docker-compatible container engine written in Python on Twisted",
    python_requires=">=3.11",
    # twisted/plugins is a namespace-less plugin directory: no __init__.py there,
    # so it must be listed by hand (see Twisted's plugin howto).
    packages=find_packages(exclude=["twisted*", "bench*", "contrib*"]) + ["twisted.plugins"],
    # An explicit root makes `pip install -e .` put the checkout on sys.path
    # (setuptools' static .pth strategy), which is how twistd finds
    # twisted/plugins/ in a checkout; the default import-hook strategy hides it.
    package_dir={"": "."},
    package_data={"twisted": ["plugins/dockerpy_plugin.py"]},
    scripts=["bin/docker"],
    install_requires=[
        # The attach hijack reaches into HTTPChannel internals: keep the range tight.
        "Twisted>=24.7,<27",
        "klein>=24.8",
        "treq>=24.9",
        "pyroute2>=0.9,<0.10",
        "pyOpenSSL>=24",
        "service_identity",
        "zope.interface>=6",
        # BuildKit's Dockerfile parser (docker build).
        "dockerfile>=3.3",
        # zstd-compressed image layers (OCI tar+zstd) on pull.
        "zstandard>=0.22",
    ],
    extras_require={"test": ["docker>=7"]},
)
