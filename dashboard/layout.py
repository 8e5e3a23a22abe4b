"""Page-wide CSS: what Streamlit's theme options cannot say.

- less empty space above the loop view, so the canvas and the maps fit a 1280×800 screen together;
- select lists at least 28rem wide, so long layer names ("aggregation_up (72×72×64 · resizing
  (UpSampling2D))") are not cut in a list as narrow as a half column;
- room above the canvas for its toolbar (undo, redo, edit, reset), which would cover the controls above;
- method tags in the multiselect wrap onto further lines instead of scrolling sideways out of sight,
  and show their whole label, so the × at the end of a long tag stays visible and clickable; the box
  grows with them (Streamlit caps its height, and "Select all" spilled the tags over the controls below).
"""

from __future__ import annotations

CSS = """
<style>
.block-container, [data-testid="stMainBlockContainer"] { padding-top: 2.6rem; padding-bottom: 2rem; }
.st-key-methods-picker [data-testid="stMultiSelectTagsContainer"] { overflow: visible !important;
    flex-wrap: wrap !important; max-width: 100%; mask-image: none !important; -webkit-mask-image: none !important; }
.st-key-methods-picker [data-testid="stMultiSelectTagsContainer"] > [role="group"] { display: flex;
    flex-wrap: wrap !important; row-gap: 0.25rem; max-width: 100%; }
.st-key-methods-picker [data-tag] { max-width: 100%; height: auto; flex-shrink: 1; }
.st-key-methods-picker [data-tag] > span[title] { max-width: none; white-space: normal; overflow: visible;
    text-overflow: clip; }
.st-key-methods-picker [data-tag] > button { flex-shrink: 0; }
.st-key-methods-picker div:has(> [data-testid="stMultiSelectTagsContainer"]) { max-height: none !important; }
.st-key-region-canvas { padding-top: 2.2rem; }
[data-testid="stSelectboxVirtualDropdown"] { min-width: 28rem !important; }
</style>
"""
