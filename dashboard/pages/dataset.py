"""Second page of the dashboard: the dataset view of batch results (see `dashboard/dataset_view.py`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import streamlit as st  # noqa: E402

from dashboard import dataset_view, state  # noqa: E402

st.set_page_config(page_title="segexplain · dataset", page_icon="🍄", layout="wide")
state.init()
st.title("Dataset view", anchor=False)
st.caption("What the network relies on, class by class, over a batch run (`python -m explainers.batch`).")
dataset_view.show()
