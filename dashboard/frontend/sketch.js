// The region sketch pad: a Streamlit components-v2 frontend in plain JavaScript (no build step).
//
// Why our own: the drawing package we used held every stroke back for a fixed 200 ms after mouse-up
// and PNG-encoded the whole canvas for each send; that was 40 % of the page's latency budget. This pad
// sends the finished shapes the moment a stroke, rectangle, point or polygon is complete, as plain
// geometry in canvas (CSS) pixels. Python turns the geometry into a mask (`dashboard.canvas`).
//
// data (from Python): {width, height, background (data URL), tool, strokeWidth, pointRadius, resetKey,
//                      initial (what this pad last sent, or null): a pad mounted again starts from it}
// state sent back:    "shapes" = {shapes: [...], version: n}; each shape is one of
//   {kind: "stroke", width, points: [x0, y0, x1, y1, ...]}
//   {kind: "rect", x, y, w, h}
//   {kind: "polygon", points: [x0, y0, ...]}      (closed polygons only)
//   {kind: "point", x, y, r}

const FILL = "rgba(255, 255, 255, 0.35)";
const INK = "rgba(255, 255, 255, 0.85)";
const CLOSE_PX = 9; // a click this close to the first corner closes the polygon
const SAME_PX = 3; // a click this close to the last corner adds nothing (the two clicks of a double-click)
const pads = new WeakMap();

const round = (v) => Math.round(v * 10) / 10;

function build(root) {
  const box = document.createElement("div");
  box.className = "sk-box";
  const bg = document.createElement("img");
  bg.className = "sk-bg";
  bg.alt = "";
  bg.draggable = false;
  const canvas = document.createElement("canvas");
  canvas.className = "segexplain-sketch";
  canvas.setAttribute("aria-label", "Drawing canvas: mark the region to explain");
  box.append(bg, canvas);
  const bar = document.createElement("div");
  bar.className = "sk-bar";
  const button = (label, title) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.title = title;
    b.setAttribute("aria-label", title);
    bar.appendChild(b);
    return b;
  };
  const pad = {
    root, box, bg, canvas, bar,
    undoButton: button("↶ Undo", "Undo the last shape (or the last polygon corner)"),
    redoButton: button("↷ Redo", "Redo"),
    clearButton: button("✕ Clear", "Clear the drawing"),
    shapes: [], redo: [], draft: null, corners: [], hover: null, version: 0,
    data: null, resetKey: null, send: null, pointerId: null, ratio: 1, ratioQuery: null,
  };
  pad.onRatio = () => {
    fitBackingStore(pad);
    paint(pad);
  };
  root.append(box, bar);
  wire(pad);
  return pad;
}

function position(pad, event) {
  const r = pad.canvas.getBoundingClientRect();
  const sx = pad.data.width / (r.width || pad.data.width);
  const sy = pad.data.height / (r.height || pad.data.height);
  return [(event.clientX - r.left) * sx, (event.clientY - r.top) * sy];
}

function commit(pad, shape) {
  if (shape) {
    pad.shapes.push(shape);
    pad.redo = [];
  }
  pad.version += 1;
  pad.send("shapes", { shapes: pad.shapes, version: pad.version });
  paint(pad);
}

function closePolygon(pad) {
  const corners = pad.corners;
  pad.corners = [];
  pad.hover = null;
  if (corners.length >= 3) {
    commit(pad, { kind: "polygon", points: corners.flat().map(round) });
  } else {
    paint(pad);
  }
}

function wire(pad) {
  const c = pad.canvas;
  c.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || pad.data == null) return;
    c.focus({ preventScroll: true }); // Enter and Esc act on an open polygon
    const [x, y] = position(pad, event);
    const tool = pad.data.tool;
    if (tool === "point") {
      commit(pad, { kind: "point", x: round(x), y: round(y), r: pad.data.pointRadius });
      return;
    }
    if (tool === "polygon") {
      const corners = pad.corners;
      const first = corners[0];
      const last = corners[corners.length - 1];
      if (corners.length >= 3 && Math.hypot(x - first[0], y - first[1]) <= CLOSE_PX) {
        closePolygon(pad);
      } else if (!last || Math.hypot(x - last[0], y - last[1]) > SAME_PX) {
        corners.push([x, y]);
        paint(pad);
      }
      return;
    }
    c.setPointerCapture(event.pointerId);
    pad.pointerId = event.pointerId;
    pad.draft = tool === "rect"
      ? { kind: "rect", x0: x, y0: y, x1: x, y1: y }
      : { kind: "stroke", width: pad.data.strokeWidth, points: [x, y] };
    paint(pad);
  });
  c.addEventListener("pointermove", (event) => {
    if (pad.data == null) return;
    const [x, y] = position(pad, event);
    if (pad.data.tool === "polygon" && pad.corners.length) {
      pad.hover = [x, y];
      paint(pad);
      return;
    }
    const draft = pad.draft;
    if (draft == null || event.pointerId !== pad.pointerId) return;
    if (draft.kind === "rect") {
      draft.x1 = x;
      draft.y1 = y;
    } else {
      const moves = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
      for (const move of moves.length ? moves : [event]) draft.points.push(...position(pad, move));
    }
    paint(pad);
  });
  const finish = (event) => {
    const draft = pad.draft;
    if (draft == null || event.pointerId !== pad.pointerId) return;
    pad.draft = null;
    pad.pointerId = null;
    if (draft.kind === "rect") {
      const x = Math.min(draft.x0, draft.x1), y = Math.min(draft.y0, draft.y1);
      const w = Math.abs(draft.x1 - draft.x0), h = Math.abs(draft.y1 - draft.y0);
      if (w < 1 || h < 1) { paint(pad); return; } // a click without a drag is not a rectangle
      commit(pad, { kind: "rect", x: round(x), y: round(y), w: round(w), h: round(h) });
    } else {
      commit(pad, { kind: "stroke", width: draft.width, points: draft.points.map(round) });
    }
  };
  c.addEventListener("pointerup", finish);
  c.addEventListener("pointercancel", finish);
  c.addEventListener("dblclick", (event) => {
    if (pad.data && pad.data.tool === "polygon") {
      event.preventDefault();
      closePolygon(pad);
    }
  });
  c.addEventListener("pointerleave", () => {
    if (pad.hover) { pad.hover = null; paint(pad); }
  });
  c.tabIndex = 0;
  c.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && pad.corners.length) { pad.corners = []; pad.hover = null; paint(pad); }
    if (event.key === "Enter" && pad.corners.length) closePolygon(pad);
  });
  pad.undoButton.addEventListener("click", () => {
    if (pad.corners.length) { pad.corners.pop(); paint(pad); return; }
    if (!pad.shapes.length) return;
    pad.redo.push(pad.shapes.pop());
    commit(pad, null);
  });
  pad.redoButton.addEventListener("click", () => {
    if (!pad.redo.length) return;
    pad.shapes.push(pad.redo.pop());
    commit(pad, null);
  });
  pad.clearButton.addEventListener("click", () => {
    pad.corners = [];
    pad.hover = null;
    if (!pad.shapes.length) { paint(pad); return; }
    pad.redo = [];
    pad.shapes = [];
    commit(pad, null);
  });
}

function trace(ctx, points) {
  ctx.beginPath();
  ctx.moveTo(points[0], points[1]);
  for (let i = 2; i < points.length; i += 2) ctx.lineTo(points[i], points[i + 1]);
}

function paintShape(ctx, shape) {
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = INK;
  ctx.fillStyle = FILL;
  if (shape.kind === "stroke") {
    ctx.lineWidth = shape.width;
    if (shape.points.length === 2) {
      ctx.beginPath();
      ctx.arc(shape.points[0], shape.points[1], shape.width / 2, 0, 2 * Math.PI);
      ctx.fillStyle = INK;
      ctx.fill();
      return;
    }
    trace(ctx, shape.points);
    ctx.stroke();
  } else if (shape.kind === "rect") {
    ctx.fillRect(shape.x, shape.y, shape.w, shape.h);
    ctx.strokeRect(shape.x, shape.y, shape.w, shape.h);
  } else if (shape.kind === "polygon") {
    trace(ctx, shape.points);
    ctx.closePath();
    ctx.fill();
    ctx.stroke();
  } else if (shape.kind === "point") {
    ctx.beginPath();
    ctx.arc(shape.x, shape.y, shape.r, 0, 2 * Math.PI);
    ctx.fillStyle = INK;
    ctx.fill();
  }
}

// The canvas's backing store has one pixel per device pixel, so lines stay sharp; a change of the
// device pixel ratio (browser zoom, another screen) refits it and repaints, and listens again for the
// next ratio (a resolution media query matches one ratio only).
function fitBackingStore(pad) {
  const ratio = window.devicePixelRatio || 1;
  pad.ratio = ratio;
  pad.canvas.width = Math.round(pad.data.width * ratio);
  pad.canvas.height = Math.round(pad.data.height * ratio);
  if (pad.ratioQuery) pad.ratioQuery.removeEventListener("change", pad.onRatio);
  pad.ratioQuery = window.matchMedia(`(resolution: ${ratio}dppx)`);
  pad.ratioQuery.addEventListener("change", pad.onRatio);
}

function paint(pad) {
  const ctx = pad.canvas.getContext("2d");
  const ratio = pad.ratio;
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, pad.data.width, pad.data.height);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  for (const shape of pad.shapes) paintShape(ctx, shape);
  const draft = pad.draft;
  if (draft && draft.kind === "rect") {
    paintShape(ctx, { kind: "rect", x: Math.min(draft.x0, draft.x1), y: Math.min(draft.y0, draft.y1),
                      w: Math.abs(draft.x1 - draft.x0), h: Math.abs(draft.y1 - draft.y0) });
  } else if (draft) {
    paintShape(ctx, draft);
  }
  if (pad.corners.length) {
    const open = pad.corners.flat();
    if (pad.hover) open.push(...pad.hover);
    ctx.setLineDash([4, 3]);
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = INK;
    trace(ctx, open);
    ctx.stroke();
    ctx.setLineDash([]);
    pad.corners.forEach(([x, y], i) => {
      ctx.beginPath();
      ctx.arc(x, y, i === 0 ? CLOSE_PX / 2 + 1 : 3, 0, 2 * Math.PI);
      ctx.fillStyle = i === 0 ? "#ffd54a" : INK;
      ctx.fill();
    });
  }
  pad.canvas.dataset.shapes = String(pad.shapes.length); // read by the browser tests
  pad.canvas.dataset.openCorners = String(pad.corners.length);
  pad.undoButton.disabled = !pad.shapes.length && !pad.corners.length;
  pad.redoButton.disabled = !pad.redo.length;
  pad.clearButton.disabled = !pad.shapes.length && !pad.corners.length;
}

function update(pad, data) {
  const resized = !pad.data || pad.data.width !== data.width || pad.data.height !== data.height;
  if (pad.resetKey !== data.resetKey) {
    // a new pad, or a new image: start from what Python kept for this key (nothing for a new image)
    pad.resetKey = data.resetKey;
    const initial = data.initial;
    pad.shapes = initial && Array.isArray(initial.shapes) ? initial.shapes.slice() : [];
    pad.version = initial && Number.isFinite(initial.version) ? initial.version : 0;
    pad.redo = [];
    pad.draft = null;
    pad.corners = [];
  }
  if (pad.data && pad.data.tool !== data.tool) {
    pad.corners = [];
    pad.hover = null;
  }
  pad.data = data;
  if (resized) {
    pad.box.style.width = `${data.width}px`;
    pad.box.style.height = `${data.height}px`;
    fitBackingStore(pad);
  }
  if (pad.bg.getAttribute("src") !== data.background) pad.bg.setAttribute("src", data.background || "");
  pad.canvas.style.cursor = data.tool === "point" || data.tool === "polygon" ? "crosshair" : "cell";
  paint(pad);
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  const root = parentElement.querySelector(".sk-root");
  let pad = pads.get(parentElement);
  if (!pad) {
    pad = build(root);
    pads.set(parentElement, pad);
  } else if (!root.contains(pad.box)) {
    root.append(pad.box, pad.bar);
  }
  pad.send = setStateValue;
  update(pad, data);
  return () => {
    pads.delete(parentElement);
    if (pad.ratioQuery) pad.ratioQuery.removeEventListener("change", pad.onRatio);
    pad.box.remove();
    pad.bar.remove();
  };
}
