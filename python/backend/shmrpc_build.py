"""A PEP 517 build backend for the pure-Python shmrpc package, with no
dependencies, so that `pip install ./python` works without a package index.

It writes a py3-none-any wheel of the shmrpc/ folder (PEP 427), an editable
wheel that points a .pth file at this folder (PEP 660), and an sdist. Name
and version come from pyproject.toml.
"""
import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "shmrpc"


def _project():
    with open(os.path.join(HERE, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    project = text[text.index("[project]"):]

    def field(key):
        match = re.search(r'^%s\s*=\s*"([^"]*)"' % key, project, re.M)
        return match.group(1)
    return field("name"), field("version"), field("description"), field(
        "requires-python")


def _metadata():
    name, version, summary, python = _project()
    return name, version, ("Metadata-Version: 2.1\nName: %s\nVersion: %s\n"
                           "Summary: %s\nRequires-Python: %s\n"
                           % (name, version, summary, python))


def _package_files():
    folder = os.path.join(HERE, PACKAGE)
    for entry in sorted(os.listdir(folder)):
        if entry.endswith(".py") and entry != "_installed.py":
            yield "%s/%s" % (PACKAGE, entry), os.path.join(folder, entry)


def _wheel(directory, contents):
    """Writes the wheel of {archive path: bytes} plus its dist-info."""
    name, version, metadata = _metadata()
    dist_info = "%s-%s.dist-info" % (name, version)
    contents = dict(contents)
    contents[dist_info + "/METADATA"] = metadata.encode()
    contents[dist_info + "/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: shmrpc_build\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    record = []
    for path, data in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest())
        record.append("%s,sha256=%s,%d" % (path, digest.rstrip(b"=").decode(),
                                           len(data)))
    record.append(dist_info + "/RECORD,,")
    contents[dist_info + "/RECORD"] = ("\n".join(record) + "\n").encode()
    filename = "%s-%s-py3-none-any.whl" % (name, version)
    with zipfile.ZipFile(os.path.join(directory, filename), "w",
                         zipfile.ZIP_DEFLATED) as wheel:
        for path, data in contents.items():
            wheel.writestr(path, data)
    return filename


def build_wheel(wheel_directory, config_settings=None,
                metadata_directory=None):
    files = {}
    for archive_path, path in _package_files():
        with open(path, "rb") as f:
            files[archive_path] = f.read()
    return _wheel(wheel_directory, files)


def build_editable(wheel_directory, config_settings=None,
                   metadata_directory=None):
    return _wheel(wheel_directory, {PACKAGE + ".pth": (HERE + "\n").encode()})


def build_sdist(sdist_directory, config_settings=None):
    name, version, metadata = _metadata()
    root = "%s-%s" % (name, version)
    filename = root + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as sdist:
        paths = ["pyproject.toml", "backend/shmrpc_build.py"] + [
            archive for archive, _ in _package_files()]
        for path in paths:
            sdist.add(os.path.join(HERE, path), "%s/%s" % (root, path))
        info = tarfile.TarInfo(root + "/PKG-INFO")
        info.size = len(metadata.encode())
        sdist.addfile(info, io.BytesIO(metadata.encode()))
    return filename
