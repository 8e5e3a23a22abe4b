"""Page-wide CSS: what Streamlit's theme options cannot say.

- less empty space above the loop view, so the canvas and the maps fit a 1280×800 screen together;
- method tags in the multiselect wrap onto further lines instead of scrolling sideways out of sight,
  and show their whole label, so the × at the end of a long tag stays visible and clickable.
"""

from __future__ import annotations

CSS = """
<style>
.block-container, [data-testid="stMainBlockContainer"] { padding-top: 2.6rem; padding-bottom: 2rem; }
.st-key-methods-picker [data-baseweb="select"] > div { flex-wrap: wrap; overflow: visible; max-height: none; }
.st-key-methods-picker [data-baseweb="select"] > div > div { flex-wrap: wrap; overflow: visible; }
.st-key-methods-picker [data-baseweb="tag"] { max-width: 100%; height: auto; }
.st-key-methods-picker [data-baseweb="tag"] span { max-width: none; white-space: normal; overflow: visible;
                                                    text-overflow: clip; }
.st-key-methods-picker [data-baseweb="tag"] [role="presentation"] { flex-shrink: 0; }
[class*="st-key-map-"] [data-testid="stImageCaption"] { margin-top: 0; }
</style>
"""
