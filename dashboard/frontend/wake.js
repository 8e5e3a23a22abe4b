// A slow map's progress bar that asks for the next look at its job only when the job should be done.
//
// Why: a fragment with `run_every` reruns every half second while XRAI runs, and each rerun makes the
// browser re-render the page (about 0.1 s of a core each on our 2-core machines, time XRAI's worker
// loses). Here the bar moves on its own towards the expected end and a single trigger is sent when
// that time has come; Python answers with the map or with a new estimate.
//
// data: {progress (0..1, the job's last report), wakeMs (when to look again), expectMs (expected
//        remaining time, for the bar's motion), text, seq (changes on every render)}
// trigger sent back: "tick" = seq

const timers = new WeakMap();

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const root = parentElement.querySelector(".wk-root");
  let bar = root.querySelector(".wk-fill");
  if (!bar) {
    const track = document.createElement("div");
    track.className = "wk-track";
    track.setAttribute("role", "progressbar");
    bar = document.createElement("div");
    bar.className = "wk-fill";
    track.appendChild(bar);
    const label = document.createElement("div");
    label.className = "wk-text";
    root.append(label, track);
  }
  const track = root.querySelector(".wk-track");
  const start = Math.max(0, Math.min(1, data.progress));
  track.setAttribute("aria-valuenow", String(Math.round(start * 100)));
  root.querySelector(".wk-text").textContent = data.text;
  // jump to the reported progress, then glide towards (not onto) the end over the expected time, in a
  // few steps of a transform (a smooth width animation would repaint every frame, CPU the job needs)
  bar.style.transition = "none";
  bar.style.transform = `scaleX(${start})`;
  void bar.offsetWidth;
  bar.style.transition = `transform ${Math.max(data.expectMs, 1)}ms steps(12)`;
  bar.style.transform = `scaleX(${start + (1 - start) * 0.95})`;

  clearTimeout(timers.get(parentElement));
  timers.set(parentElement, setTimeout(() => setTriggerValue("tick", data.seq), data.wakeMs));
  return () => clearTimeout(timers.get(parentElement));
}
