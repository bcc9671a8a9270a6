"""Which places a catalog's asset hrefs may send Dask workers to: the trust policy for catalogs.

A STAC item names the files workers open. An untrusted catalog could name local files outside it
(``/etc/shadow``, another user's data) or internal addresses (a cloud metadata service at
169.254.169.254, a cluster-internal service): server-side request forgery. So every asset href is
checked on the client, right after the search and before any task is sent. By default an href may
name:

- a file inside the catalog's own folder (a local catalog; symbolic links are followed first);
- an object in the catalog's own bucket (an ``s3://`` catalog), or on the catalog's own
  ``http(s)://`` host and port;
- an ``http(s)://`` host whose every address is public (not loopback, private, link-local,
  multicast or reserved); the host is resolved once on the client.

Anything else needs an explicit allowance: ``--allow-assets PREFIX`` (repeatable) or the
environment variable ``GEOSLIDE_ALLOW_ASSETS`` (PREFIXes separated by commas), where PREFIX is a
local folder, ``s3://BUCKET[/KEY-PREFIX]``, ``gs://BUCKET[/KEY-PREFIX]`` or
``http(s)://HOST[:PORT][/PATH]``. Link-local and cloud metadata addresses are refused even then.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import ipaddress
import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from geoslide.errors import CatalogError
from geoslide.fileio import local_path

#: The environment variable with extra allowed asset prefixes, separated by commas.
ENV_VAR = "GEOSLIDE_ALLOW_ASSETS"
#: The CLI option that adds an allowed prefix.
OPTION = "--allow-assets"
#: Host names of cloud metadata services (they resolve to link-local addresses inside the cloud).
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                            "instance-data.ec2.internal", "metadata.azure.internal"})
_BUCKET_SCHEMES = ("s3", "gs")
_WEB_SCHEMES = ("http", "https")
_EXTRA: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("geoslide_allow_assets", default=())


@dataclass(frozen=True)
class AssetPolicy:
    """Where asset hrefs may point.

    Parameters
    ----------
    roots
        Allowed prefixes: resolved local folders, ``s3://bucket/prefix``, ``http(s)://host:port/path``.
    public_web
        Whether ``http(s)://`` hosts whose addresses are all public are allowed too.
    """

    roots: tuple[str, ...]
    public_web: bool = True

    def check(self, href: str) -> None:
        """Raise :class:`CatalogError` (one line, naming ``--allow-assets``) unless ``href`` is allowed."""
        path = local_path(href)
        if path is not None:
            return self._check_local(href, path)
        parsed = urlparse(href)
        if parsed.scheme not in (*_BUCKET_SCHEMES, *_WEB_SCHEMES) or not parsed.netloc:
            raise CatalogError(f"asset href {href} is not a path, s3://, gs:// or http(s):// URL; geoslide does not "
                               "read it (fix the catalog)")
        if parsed.scheme in _WEB_SCHEMES:
            _refuse_metadata(href, parsed.hostname or "")
        if any(_under_url(href, root) for root in self.roots):
            return None
        if parsed.scheme in _WEB_SCHEMES and self.public_web and _is_public(parsed.hostname or ""):
            return None
        where = "its bucket" if parsed.scheme in _BUCKET_SCHEMES else "a private or unresolvable address"
        raise CatalogError(f"asset href {href} is outside the catalog's trusted places ({where}); if you trust it, "
                           f"pass {OPTION} {_suggest(href)} or add it to ${ENV_VAR}")

    def _check_local(self, href: str, path: Path) -> None:
        if str(path).startswith("/vsi") or "vrt:" in str(path):
            raise CatalogError(f"asset href {href} is a GDAL virtual path; geoslide reads plain files and URLs only "
                               "(fix the catalog)")
        real = Path(os.path.realpath(path.expanduser()))
        if any(_under_folder(real, root) for root in self.roots):
            return None
        raise CatalogError(f"asset href {href} is a local file outside the catalog's folder; if you trust it, "
                           f"pass {OPTION} {real.parent} or add that folder to ${ENV_VAR}")


def policy_for(catalog_href: str, extra: Iterable[str] = ()) -> AssetPolicy:
    """The policy for a catalog at ``catalog_href``: its own place, plus ``extra``, the context's and the env's."""
    roots = [_own_root(catalog_href), *(_root(e) for e in (*extra, *allowed_extra()))]
    return AssetPolicy(tuple(dict.fromkeys(roots)))


def check_assets(hrefs: Iterable[str], policy: AssetPolicy) -> None:
    """Check every href against ``policy``; the first refused one raises :class:`CatalogError`."""
    for href in hrefs:
        policy.check(href)


def allowed_extra() -> tuple[str, ...]:
    """Prefixes allowed by :func:`allow_assets` contexts and ``$GEOSLIDE_ALLOW_ASSETS``."""
    env = tuple(p.strip() for p in os.environ.get(ENV_VAR, "").split(",") if p.strip())
    return (*_EXTRA.get(), *env)


@contextlib.contextmanager
def allow_assets(prefixes: Iterable[str]) -> Iterator[None]:
    """Within the block, asset hrefs under ``prefixes`` are allowed too (what ``--allow-assets`` does)."""
    checked = tuple(_root(p) for p in prefixes)
    token = _EXTRA.set((*_EXTRA.get(), *checked))
    try:
        yield
    finally:
        _EXTRA.reset(token)


def _own_root(catalog_href: str) -> str:
    path = local_path(catalog_href)
    if path is not None:
        real = Path(os.path.realpath(path.expanduser()))
        return str(real if real.is_dir() else real.parent)
    parsed = urlparse(catalog_href)
    return f"{parsed.scheme}://{parsed.netloc}/"  # the bucket, or the host and port


def _root(prefix: str) -> str:
    """A user's prefix in the form :func:`_under_url`/:func:`_under_folder` compare; refuses unusable ones."""
    text = str(prefix).strip()
    path = local_path(text)
    if path is not None:
        if not text:
            raise CatalogError(f"{OPTION} needs a folder or URL prefix; e.g. {OPTION} /data/imagery or "
                               f"{OPTION} https://data.example.org")
        return os.path.realpath(path.expanduser())
    parsed = urlparse(text)
    if parsed.scheme not in (*_BUCKET_SCHEMES, *_WEB_SCHEMES) or not parsed.netloc:
        raise CatalogError(f"{OPTION} {text!r} must be a folder, s3://BUCKET, gs://BUCKET or http(s)://HOST prefix")
    if parsed.scheme in _WEB_SCHEMES:
        _refuse_metadata(text, parsed.hostname or "")
    return text if parsed.path else f"{text}/"


def _under_url(href: str, root: str) -> bool:
    if "://" not in root:
        return False
    h, r = urlparse(href), urlparse(root)
    if (h.scheme, (h.netloc or "").lower()) != (r.scheme, (r.netloc or "").lower()):
        return False
    base = r.path.rstrip("/")
    return not base or h.path == base or h.path.startswith(base + "/")


def _under_folder(real: Path, root: str) -> bool:
    return "://" not in root and (real == Path(root) or Path(root) in real.parents)


def _refuse_metadata(href: str, host: str) -> None:
    name = host.lower().rstrip(".")
    if name in METADATA_HOSTS or any(_never(a) for a in _literal_or_resolved(name)):
        raise CatalogError(f"asset href {href} points at a link-local or cloud metadata address; geoslide never "
                           "reads those (fix the catalog)")


def _never(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Link-local (169.254/16, fe80::/10, the metadata services) and fd00:ec2::254 (AWS IMDS over IPv6)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_link_local or address == ipaddress.ip_address("fd00:ec2::254")


def _is_public(host: str) -> bool:
    addresses = _literal_or_resolved(host.lower().rstrip("."))
    return bool(addresses) and all(a.is_global and not a.is_multicast for a in addresses)


@functools.lru_cache(maxsize=256)
def _literal_or_resolved(host: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    """The host's address if it is one, else the addresses it resolves to (none if it does not)."""
    try:
        return (ipaddress.ip_address(host.strip("[]")),)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return ()
    return tuple(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))


def _suggest(href: str) -> str:
    parsed = urlparse(href)
    return f"{parsed.scheme}://{parsed.netloc}"
