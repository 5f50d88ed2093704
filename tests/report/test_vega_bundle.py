"""The page's Vega runtime is vl-convert's bundle, kept on disk once made (bundling takes 2-6 s
in every gather task otherwise)."""

from __future__ import annotations

import vl_convert

from rai_audit.report import dashboard


def test_the_kept_bundle_is_vl_converts_and_is_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    packaged, cached = dashboard.vega_bundle_files()
    assert cached.parent == tmp_path / "rai-audit" and packaged.parent.name == "templates"
    if packaged.is_file():  # an image's own copy would be read first
        monkeypatch.setattr(dashboard, "vega_bundle_files", lambda: [tmp_path / "absent.js", cached])
    dashboard._vega_runtime.cache_clear()
    try:
        made = dashboard._vega_runtime()
        assert made == vl_convert.javascript_bundle() and cached.read_text(encoding="utf-8") == made
        assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no part file left
        cached.write_text("kept", encoding="utf-8")  # what is kept is what a new process reads
        dashboard._vega_runtime.cache_clear()
        assert dashboard._vega_runtime() == "kept"
    finally:
        dashboard._vega_runtime.cache_clear()


def test_a_read_only_cache_still_gives_the_bundle(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("")  # a cache folder under a file cannot be made
    monkeypatch.setattr(dashboard, "vega_bundle_files", lambda: [tmp_path / "absent.js", blocked / "vega.js"])
    dashboard._vega_runtime.cache_clear()
    try:
        assert dashboard._vega_runtime() == vl_convert.javascript_bundle()
    finally:
        dashboard._vega_runtime.cache_clear()


def test_no_home_folder_means_no_cache(monkeypatch):
    """An arbitrary container user (no passwd entry, no HOME) has no home folder."""
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(dashboard.Path, "home", staticmethod(no_home))
    assert [p.parent.name for p in dashboard.vega_bundle_files()] == ["templates"]
