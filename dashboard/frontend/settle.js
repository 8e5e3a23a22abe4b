// One trigger, sent once the pictures on the page are on screen: the moment a finished slow map may
// rerun the rest of the loop (agreement, faithfulness, export) without the browser and the server
// working on that rerun while the map itself is still being fetched, decoded and painted.
//
// data: {maxMs (send by then at the latest), seq (changes on every render)}
// trigger sent back: "due" = seq

const pending = new WeakMap();

function allPainted() {
  for (const img of document.images) {
    if (!img.complete) return false;
  }
  return true;
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const previous = pending.get(parentElement);
  if (previous) previous.cancel();
  const started = performance.now();
  let frame = 0;
  let painted = 0;  // frames seen since every picture was complete (the second one has been painted)
  const step = () => {
    painted = allPainted() ? painted + 1 : 0;
    if (painted >= 2 || performance.now() - started >= data.maxMs) {
      pending.delete(parentElement);
      setTriggerValue("due", data.seq);
      return;
    }
    frame = requestAnimationFrame(step);
  };
  const job = { cancel: () => cancelAnimationFrame(frame) };
  pending.set(parentElement, job);
  frame = requestAnimationFrame(step);
  return () => { job.cancel(); pending.delete(parentElement); };
}
