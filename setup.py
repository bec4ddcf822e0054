"""The wheel carries the top-level `schemas/` and `pwa/` inside the package, as `server/schemas/`
and `server/pwa/`, where `server.config.shipped` finds them; the checkout keeps them at the top,
where the PWA's and the schemas' own tools and tests expect them.

A build step, not `[tool.setuptools.package-dir]`: a mapped data folder must be listed as a
package with each of its subfolders (pwa/icons, pwa/vendor, and every feature folder the PWA will
grow), and the package list could then no longer be found automatically. Copying the two trees
whole needs neither list. An editable install copies nothing: it reads the checkout."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("schemas", "pwa")
# What scripts/setup generates into the PWA from schemas/ (not committed; the app needs it).
GENERATED = Path("pwa", "generated", "validators.js")


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        if not GENERATED.is_file():
            raise SystemExit(f"{GENERATED} is missing: run scripts/setup before building a wheel")
        for name in SHIPPED:
            self.copy_tree(name, str(Path(self.build_lib) / "server" / name))


setup(cmdclass={"build_py": BuildPyWithData})
