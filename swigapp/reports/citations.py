"""The works that a swigapp run relies on, as BibTeX, for the methods boilerplate.

Each entry is keyed by its BibTeX key; :func:`bibtex` writes the entries a text cites and
:func:`reference_line` a one-line reference for Markdown and HTML lists.
"""

from __future__ import annotations

from collections.abc import Iterable

from swigapp._version import __version__

CODE_URL = "https://github.com/swigapp/swigapp"

#: key -> (BibTeX entry type, fields). Authors in BibTeX form ("Last, First and ...").
REFERENCES: dict[str, tuple[str, dict[str, str]]] = {
    "swigapp": (
        "software",
        {
            "author": "{swigapp developers}",
            "title": "swigapp: physics-informed, weighted-image-guided super-resolution of "
            "quantitative MRI",
            "version": __version__,
            "year": "2026",
            "url": CODE_URL,
        },
    ),
    "samadifardheris2025swig": (
        "misc",
        {
            "author": "Samadifardheris, Alireza and Poot, Dirk H. J. and Wiesinger, Florian "
            "and Klein, Stefan and Hernandez-Tamames, Juan A.",
            "title": "Self-Supervised Weighted Image Guided Quantitative {MRI} Super-Resolution",
            "year": "2025",
            "eprint": "2512.17612",
            "archiveprefix": "arXiv",
            "url": "https://arxiv.org/abs/2512.17612",
        },
    ),
    "qiu2022hybrid": (
        "inproceedings",
        {
            "author": "Qiu, Shihan and Christodoulou, Anthony G. and Xie, Yibin and Li, Debiao",
            "title": "Hybrid supervised and self-supervised deep learning for quantitative "
            "mapping from weighted images using low-resolution labels",
            "booktitle": "Proceedings of the International Society for Magnetic Resonance in "
            "Medicine 30",
            "note": "Abstract 2609",
            "year": "2022",
        },
    ),
    "mcginnis2023inr": (
        "inproceedings",
        {
            "author": "McGinnis, Julian and Shit, Suprosanna and Li, Hongwei Bran and "
            "Sideri-Lampretsa, Vasiliki and Graf, Robert and Dannecker, Maik and Pan, Jiazhen "
            "and Stolt-Ans{\\'o}, Nil and M{\\\"u}hlau, Mark and Kirschke, Jan S. and "
            "Rueckert, Daniel and Wiestler, Benedikt",
            "title": "Single-subject Multi-contrast {MRI} Super-resolution via Implicit Neural "
            "Representations",
            "booktitle": "Medical Image Computing and Computer Assisted Intervention (MICCAI 2023)",
            "year": "2023",
            "eprint": "2303.15065",
            "archiveprefix": "arXiv",
        },
    ),
    "tancik2020fourier": (
        "inproceedings",
        {
            "author": "Tancik, Matthew and Srinivasan, Pratul P. and Mildenhall, Ben and "
            "Fridovich-Keil, Sara and Raghavan, Nithin and Singhal, Utkarsh and Ramamoorthi, "
            "Ravi and Barron, Jonathan T. and Ng, Ren",
            "title": "Fourier Features Let Networks Learn High Frequency Functions in Low "
            "Dimensional Domains",
            "booktitle": "Advances in Neural Information Processing Systems 33",
            "year": "2020",
            "eprint": "2006.10739",
            "archiveprefix": "arXiv",
        },
    ),
    "muller2022instant": (
        "article",
        {
            "author": 'M{\\"u}ller, Thomas and Evans, Alex and Schied, Christoph and Keller, '
            "Alexander",
            "title": "Instant Neural Graphics Primitives with a Multiresolution Hash Encoding",
            "journal": "ACM Transactions on Graphics",
            "volume": "41",
            "number": "4",
            "pages": "102:1--102:15",
            "year": "2022",
            "doi": "10.1145/3528223.3530127",
        },
    ),
    "avants2011ants": (
        "article",
        {
            "author": "Avants, Brian B. and Tustison, Nicholas J. and Song, Gang and Cook, "
            "Philip A. and Klein, Arno and Gee, James C.",
            "title": "A reproducible evaluation of {ANTs} similarity metric performance in "
            "brain image registration",
            "journal": "NeuroImage",
            "volume": "54",
            "number": "3",
            "pages": "2033--2044",
            "year": "2011",
            "doi": "10.1016/j.neuroimage.2010.09.025",
        },
    ),
    "tustison2021antsx": (
        "article",
        {
            "author": "Tustison, Nicholas J. and Cook, Philip A. and Holbrook, Andrew J. and "
            "Johnson, Hans J. and Muschelli, John and Devenyi, Gabriel A. and others",
            "title": "The {ANTsX} ecosystem for quantitative biological and medical imaging",
            "journal": "Scientific Reports",
            "volume": "11",
            "pages": "9068",
            "year": "2021",
            "doi": "10.1038/s41598-021-87564-6",
        },
    ),
    "mattes2003mi": (
        "article",
        {
            "author": "Mattes, David and Haynor, David R. and Vesselle, Hubert and Lewellen, "
            "Thomas K. and Eubank, William",
            "title": "{PET-CT} image registration in the chest using free-form deformations",
            "journal": "IEEE Transactions on Medical Imaging",
            "volume": "22",
            "number": "1",
            "pages": "120--128",
            "year": "2003",
            "doi": "10.1109/TMI.2003.809072",
        },
    ),
    "gorgolewski2011nipype": (
        "article",
        {
            "author": "Gorgolewski, Krzysztof and Burns, Christopher D. and Madison, Cindee "
            "and Clark, Dav and Halchenko, Yaroslav O. and Waskom, Michael L. and Ghosh, "
            "Satrajit S.",
            "title": "Nipype: a flexible, lightweight and extensible neuroimaging data "
            "processing framework in {Python}",
            "journal": "Frontiers in Neuroinformatics",
            "volume": "5",
            "pages": "13",
            "year": "2011",
            "doi": "10.3389/fninf.2011.00013",
        },
    ),
    "gorgolewski2016bids": (
        "article",
        {
            "author": "Gorgolewski, Krzysztof J. and Auer, Tibor and Calhoun, Vince D. and "
            "Craddock, R. Cameron and Das, Samir and Duff, Eugene P. and others",
            "title": "The brain imaging data structure, a format for organizing and "
            "describing outputs of neuroimaging experiments",
            "journal": "Scientific Data",
            "volume": "3",
            "pages": "160044",
            "year": "2016",
            "doi": "10.1038/sdata.2016.44",
        },
    ),
    "yarkoni2019pybids": (
        "article",
        {
            "author": "Yarkoni, Tal and Markiewicz, Christopher J. and de la Vega, Alejandro "
            "and Gorgolewski, Krzysztof J. and Salo, Taylor and Halchenko, Yaroslav O. and "
            "others",
            "title": "{PyBIDS}: Python tools for {BIDS} datasets",
            "journal": "Journal of Open Source Software",
            "volume": "4",
            "number": "40",
            "pages": "1294",
            "year": "2019",
            "doi": "10.21105/joss.01294",
        },
    ),
    "brett2024nibabel": (
        "software",
        {
            "author": "Brett, Matthew and Markiewicz, Christopher J. and Hanke, Michael and others",
            "title": "nipy/nibabel",
            "publisher": "Zenodo",
            "year": "2024",
            "doi": "10.5281/zenodo.591597",
        },
    ),
    "paszke2019pytorch": (
        "inproceedings",
        {
            "author": "Paszke, Adam and Gross, Sam and Massa, Francisco and Lerer, Adam and "
            "Bradbury, James and Chanan, Gregory and others",
            "title": "{PyTorch}: An Imperative Style, High-Performance Deep Learning Library",
            "booktitle": "Advances in Neural Information Processing Systems 32",
            "pages": "8024--8035",
            "year": "2019",
        },
    ),
    "fonov2009icbm": (
        "article",
        {
            "author": "Fonov, Vladimir S. and Evans, Alan C. and McKinstry, Robert C. and "
            "Almli, C. Robert and Collins, D. Louis",
            "title": "Unbiased nonlinear average age-appropriate brain templates from birth "
            "to adulthood",
            "journal": "NeuroImage",
            "volume": "47",
            "pages": "S102",
            "year": "2009",
            "doi": "10.1016/S1053-8119(09)70884-5",
        },
    ),
    "ciric2022templateflow": (
        "article",
        {
            "author": "Ciric, Rastko and Thompson, William H. and Lorenz, Romy and "
            "Goncalves, Mathias and MacNicol, Eilidh E. and Markiewicz, Christopher J. and "
            "others",
            "title": "{TemplateFlow}: {FAIR}-sharing of multi-scale, multi-species brain models",
            "journal": "Nature Methods",
            "volume": "19",
            "pages": "1568--1571",
            "year": "2022",
            "doi": "10.1038/s41592-022-01681-2",
        },
    ),
    "abraham2014nilearn": (
        "article",
        {
            "author": "Abraham, Alexandre and Pedregosa, Fabian and Eickenberg, Michael and "
            "Gervais, Philippe and Mueller, Andreas and Kossaifi, Jean and Gramfort, "
            'Alexandre and Thirion, Bertrand and Varoquaux, Ga{\\"e}l',
            "title": "Machine learning for neuroimaging with scikit-learn",
            "journal": "Frontiers in Neuroinformatics",
            "volume": "8",
            "pages": "14",
            "year": "2014",
            "doi": "10.3389/fninf.2014.00014",
        },
    ),
    "deichmann2000mprage": (
        "article",
        {
            "author": "Deichmann, Ralf and Good, Catriona D. and Josephs, Oliver and "
            "Ashburner, John and Turner, Robert",
            "title": "Optimization of {3-D} {MP-RAGE} sequences for structural brain imaging",
            "journal": "NeuroImage",
            "volume": "12",
            "number": "1",
            "pages": "112--127",
            "year": "2000",
            "doi": "10.1006/nimg.2000.0590",
        },
    ),
    "wang2004ssim": (
        "article",
        {
            "author": "Wang, Zhou and Bovik, Alan C. and Sheikh, Hamid R. and Simoncelli, Eero P.",
            "title": "Image quality assessment: from error visibility to structural similarity",
            "journal": "IEEE Transactions on Image Processing",
            "volume": "13",
            "number": "4",
            "pages": "600--612",
            "year": "2004",
            "doi": "10.1109/TIP.2003.819861",
        },
    ),
}


def bibtex(keys: Iterable[str]) -> str:
    """BibTeX text of the entries ``keys`` (in that order, each once)."""
    blocks = []
    for key in dict.fromkeys(keys):
        kind, fields = REFERENCES[key]
        body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields.items())
        blocks.append(f"@{kind}{{{key},\n{body}\n}}")
    return "\n\n".join(blocks) + "\n"


def _plain(text: str) -> str:
    """BibTeX markup (braces, accent commands) to plain text."""
    for markup, char in (("{\\'o}", "ó"), ('{\\"u}', "ü"), ('{\\"e}', "ë")):
        text = text.replace(markup, char)
    return text.replace("{", "").replace("}", "")


def _authors(field: str) -> str:
    names = [n.strip() for n in _plain(field).split(" and ")]
    short = [n.split(",")[0] if "," in n else n for n in names if n != "others"]
    if len(names) > 3:
        return f"{short[0]} et al."
    return ", ".join(short)


def reference_line(key: str) -> str:
    """One reference as plain text: authors (year). Title. Venue. doi/arXiv/URL."""
    _, f = REFERENCES[key]
    venue: list[str] = []
    if "journal" in f:
        where = f["journal"] + (f" {f['volume']}" if "volume" in f else "")
        venue.append(where + (f":{f['pages'].replace('--', '-')}" if "pages" in f else ""))
    elif "booktitle" in f:
        venue.append(f["booktitle"])
    if "note" in f:
        venue.append(f["note"])
    if "version" in f:
        venue.append(f"version {f['version']}")
    if "doi" in f:
        venue.append(f"doi:{f['doi']}")
    elif "eprint" in f:
        venue.append(f"arXiv:{f['eprint']}")
    elif "url" in f:
        venue.append(f["url"])
    return f"{_authors(f['author'])} ({f['year']}). {_plain(f['title'])}. " + ". ".join(venue)
