"""What the default install policy knows: the packages a data-analysis snippet commonly
asks for (each with the names it is imported by), the default environment's package set,
and packages known to be malicious.

Chosen, not accumulated: well-known projects with wheels for Linux and macOS, whose
purpose is computing on data, reading and writing files, or drawing. Nothing whose
purpose is the network, processes or the system. Packages a library depends on come with
it (the allow-list judges what is asked for, not its dependencies).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CATALOG", "DEFAULT_PACKAGES", "KNOWN_MALICIOUS", "CatalogEntry", "import_to_package"]

#: The default environment's packages: the data-science stack the warm template preloads
#: (the project's ``datascience`` extra). Requested packages are added to it.
DEFAULT_PACKAGES: tuple[str, ...] = ("numpy", "pandas", "matplotlib")


@dataclass(frozen=True)
class CatalogEntry:
    """A package of the default allow-list."""

    imports: tuple[str, ...]
    """The top-level names it is imported by (``scikit-learn`` -> ``sklearn``)."""
    about: str
    """A few words for the model."""


CATALOG: dict[str, CatalogEntry] = {
    # arrays, tables, statistics, learning
    "numpy": CatalogEntry(("numpy",), "arrays"),
    "pandas": CatalogEntry(("pandas",), "tables"),
    "polars": CatalogEntry(("polars",), "fast tables"),
    "pyarrow": CatalogEntry(("pyarrow",), "Arrow and Parquet"),
    "duckdb": CatalogEntry(("duckdb",), "SQL on tables and files"),
    "xarray": CatalogEntry(("xarray",), "labelled n-d arrays"),
    "scipy": CatalogEntry(("scipy",), "scientific computing"),
    "statsmodels": CatalogEntry(("statsmodels",), "statistical models and tests"),
    "patsy": CatalogEntry(("patsy",), "model formulas"),
    "scikit-learn": CatalogEntry(("sklearn",), "machine learning"),
    "lightgbm": CatalogEntry(("lightgbm",), "gradient boosting"),
    "sympy": CatalogEntry(("sympy",), "symbolic maths"),
    "networkx": CatalogEntry(("networkx",), "graphs"),
    "numexpr": CatalogEntry(("numexpr",), "fast array expressions"),
    # plots and images
    "matplotlib": CatalogEntry(("matplotlib", "mpl_toolkits"), "plots"),
    "seaborn": CatalogEntry(("seaborn",), "statistical plots"),
    "plotly": CatalogEntry(("plotly",), "interactive plots (HTML)"),
    "pillow": CatalogEntry(("PIL",), "images"),
    "scikit-image": CatalogEntry(("skimage",), "image processing"),
    "imageio": CatalogEntry(("imageio",), "image files"),
    "opencv-python-headless": CatalogEntry(("cv2",), "computer vision"),
    "shapely": CatalogEntry(("shapely",), "geometry"),
    "geopandas": CatalogEntry(("geopandas",), "geographic tables"),
    "pyproj": CatalogEntry(("pyproj",), "map projections"),
    # files and text
    "openpyxl": CatalogEntry(("openpyxl",), "Excel .xlsx files"),
    "xlrd": CatalogEntry(("xlrd",), "old Excel .xls files"),
    "xlsxwriter": CatalogEntry(("xlsxwriter",), "writing Excel files"),
    "odfpy": CatalogEntry(("odf",), "OpenDocument spreadsheets"),
    "python-docx": CatalogEntry(("docx",), "Word .docx files"),
    "pypdf": CatalogEntry(("pypdf",), "PDF files"),
    "h5py": CatalogEntry(("h5py",), "HDF5 files"),
    "pyyaml": CatalogEntry(("yaml",), "YAML"),
    "beautifulsoup4": CatalogEntry(("bs4",), "HTML parsing"),
    "lxml": CatalogEntry(("lxml",), "XML and HTML"),
    "tabulate": CatalogEntry(("tabulate",), "text tables"),
    "python-dateutil": CatalogEntry(("dateutil",), "date parsing"),
    "pytz": CatalogEntry(("pytz",), "time zones"),
    "rapidfuzz": CatalogEntry(("rapidfuzz",), "fuzzy string matching"),
    "regex": CatalogEntry(("regex",), "extended regular expressions"),
    "unidecode": CatalogEntry(("unidecode",), "ASCII transliteration"),
    "tqdm": CatalogEntry(("tqdm",), "progress bars"),
    "joblib": CatalogEntry(("joblib",), "caching and persistence"),
}

#: Packages published to the index to attack its users (typo-squats, a hijacked release,
#: a dependency-confusion copy), with what they were. Refused under every policy.
KNOWN_MALICIOUS: dict[str, str] = {
    "jeilyfish": "a 2019 typo-squat of jellyfish that stole SSH and GPG keys",
    "python3-dateutil": "a 2019 typo-squat of python-dateutil that pulled in jeilyfish",
    "colourama": "a 2018 typo-squat of colorama that hijacked the clipboard",
    "ctx": "a 2022 hijacked project whose new releases sent environment variables away",
    "torchtriton": "a 2022 dependency-confusion copy of PyTorch's triton that stole files",
    "urlib3": "a 2017 typo-squat of urllib3 that ran code when installed",
    "urllib": "a 2017 typo-squat of the standard library's urllib",
    "bzip": "a 2017 typo-squat of the standard library's bz2",
    "crypt": "a 2017 typo-squat of the standard library's crypt",
    "telnet": "a 2017 typo-squat of the standard library's telnetlib",
    "setup-tools": "a 2017 typo-squat of setuptools",
    "django-server": "a 2017 typo-squat that ran code when installed",
}


def import_to_package(name: str) -> str | None:
    """The catalog package imported as ``name`` (``sklearn`` -> ``scikit-learn``), when
    that differs from the name itself. Compared as package names are (``PIL``, ``pil``)."""
    top = _folded(name.split(".")[0])
    for package, entry in CATALOG.items():
        if top in {_folded(i) for i in entry.imports} and package != top:
            return package
    return None


def _folded(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")
