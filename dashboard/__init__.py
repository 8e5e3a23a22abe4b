"""segexplain's Streamlit dashboard (UI only): run `streamlit run dashboard/app.py`."""
