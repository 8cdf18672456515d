"""Sphinx configuration of the mtlestimators documentation site.

Build it with ``sphinx-build -W --keep-going -b html docs docs/_build/html``
(``pip install -e ".[docs]"`` first). The pages are the Markdown files in this
folder (read by myst-parser), the API reference is generated from the
docstrings (autosummary + numpydoc), and the example gallery runs the scripts
in ``examples/`` (sphinx-gallery).
"""

import os

# The gallery runs every example in this process. Its models are small, for
# which one torch thread is about as fast as several and does not slow down
# when the machine is busy (CI, or builds next to other jobs).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

import mtlestimators  # noqa: E402

torch.set_num_threads(1)

project = "mtlestimators"
author = "mtlestimators developers"
copyright = "mtlestimators developers"
release = mtlestimators.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "conftest.py", "auto_examples/*.ipynb"]

# Markdown pages: `page.md#a-heading` links resolve to the heading's anchor.
myst_heading_anchors = 3

# API reference: one generated page per public name.
autosummary_generate = True
autodoc_default_options = {"member-order": "groupwise"}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

sphinx_gallery_conf = {
    "examples_dirs": ["../examples"],
    "gallery_dirs": ["auto_examples"],
    # Only the plot_*.py scripts are gallery examples (and run at build time);
    # other scripts in examples/ are run by hand (e.g. with accelerate launch).
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"(^|/)(?!plot_)[^/]+\.py$",
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("mtlestimators",),
    "backreferences_dir": os.path.join("generated", "backreferences"),
    "reference_url": {"mtlestimators": None},
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
}

html_theme = "alabaster"
html_title = f"mtlestimators {release}"
html_static_path = []
html_theme_options = {
    "description": "Multi-task learning models as scikit-learn estimators",
    "fixed_sidebar": True,
}


def _skip_metadata_requests(app, what, name, obj, skip, options):
    # scikit-learn generates set_{method}_request on every estimator class; they
    # are documented in scikit-learn's metadata-routing guide, not here.
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return skip


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_requests)
