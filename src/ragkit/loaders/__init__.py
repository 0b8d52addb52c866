"""Loaders turn files into :class:`~ragkit.types.Document` objects.

One loader per format, each a plain class with ``load(path) -> list[Document]``
(the :class:`~ragkit.protocols.Loader` protocol). :class:`AutoLoader` picks one by
content; :func:`walk` lists the files of a folder. Heavy parsers (pypdf,
BeautifulSoup, python-docx) are imported on first use, not here.

Example:
    >>> from ragkit.loaders import AutoLoader, walk
    >>> loader = AutoLoader()
    >>> docs = [d for path in walk("docs") for d in loader.load(path)]  # doctest: +SKIP
"""

from ragkit.loaders.auto import FORMATS, AutoLoader, detect_format, walk
from ragkit.loaders.csv import CsvLoader
from ragkit.loaders.docx import DocxLoader
from ragkit.loaders.html import HtmlLoader
from ragkit.loaders.json import JsonLoader
from ragkit.loaders.markdown import MarkdownLoader
from ragkit.loaders.pdf import PdfLoader
from ragkit.loaders.text import TextLoader

__all__ = [
    "FORMATS",
    "AutoLoader",
    "CsvLoader",
    "DocxLoader",
    "HtmlLoader",
    "JsonLoader",
    "MarkdownLoader",
    "PdfLoader",
    "TextLoader",
    "detect_format",
    "walk",
]
