// The agenda's time grid, enhanced: a free slot fills the booking form in place; an
// appointment moves by dragging it to a slot, or with its Move button, the arrow keys and
// Enter. Every move submits the appointment's own move form: the server checks it as the
// API does, and the page works without this script.
(() => {
  const grid = document.querySelector("table[data-grid]");
  const status = document.getElementById("grid-status");
  const errors = document.getElementById("booking-errors");
  if (errors) errors.focus();
  if (!grid) return;

  // Every row a cell covers (a busy cell spans several), by "column:row".
  const cells = new Map();
  grid.querySelectorAll("td.slot").forEach((td) => {
    for (let r = 0; r < td.rowSpan; r += 1) {
      cells.set(`${td.dataset.col}:${Number(td.dataset.row) + r}`, td);
    }
  });

  const say = (text) => {
    status.textContent = text;
  };

  const moveTo = (appointment, td) => {
    if (!td.dataset.start) return;
    const form = appointment.querySelector("form.move");
    form.elements.day.value = td.dataset.day;
    form.elements.starts_at.value = td.dataset.start;
    form.elements.practitioner_id.value = td.dataset.practitioner;
    form.requestSubmit();
  };

  // Booking: a free slot's link fills the form below instead of loading the page again.
  const booking = document.getElementById("booking");
  grid.addEventListener("click", (event) => {
    const link = event.target.closest("a.book");
    if (!link || !booking) return;
    event.preventDefault();
    const td = link.closest("td");
    booking.elements.day.value = td.dataset.day;
    booking.elements.starts_at.value = td.dataset.start;
    booking.elements.practitioner_id.value = td.dataset.practitioner;
    const search = document.querySelector("form.search");
    for (const [name, value] of [["slot", `${td.dataset.day}T${td.dataset.start}`], ["with", td.dataset.practitioner]]) {
      let input = search.elements[name];
      if (!input) {
        input = Object.assign(document.createElement("input"), { type: "hidden", name });
        search.append(input);
      }
      input.value = value;
    }
    const patient = booking.elements.patient_id;
    const first = patient.options.length > 1 ? patient : document.getElementById("q");
    first.scrollIntoView({ block: "center" });
    first.focus();
    say(grid.dataset.chosen.replace("{slot}", td.dataset.label));
  });

  // Dragging with a mouse (or a pen, a finger where the browser supports it).
  let dragged = null;
  grid.querySelectorAll("li.appt").forEach((appointment) => {
    if (!appointment.querySelector("form.move")) return; // cancelled: stays where it was
    appointment.draggable = true;
    appointment.querySelectorAll("a").forEach((link) => {
      link.draggable = false; // the appointment moves, not its patient's link
    });
    appointment.addEventListener("dragstart", (event) => {
      dragged = appointment;
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", appointment.dataset.appointment);
    });
    appointment.addEventListener("dragend", () => {
      dragged = null;
    });
  });
  grid.addEventListener("dragover", (event) => {
    const td = event.target.closest("td.slot");
    if (dragged && td && td.dataset.start) {
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
      grid.querySelectorAll("td.drop").forEach((other) => other.classList.remove("drop"));
      td.classList.add("drop");
    }
  });
  grid.addEventListener("drop", (event) => {
    const td = event.target.closest("td.slot");
    if (!dragged || !td) return;
    event.preventDefault();
    moveTo(dragged, td);
  });

  // Moving with the keyboard: Move, then the arrow keys choose a slot, Enter moves it there.
  let moving = null;
  let target = null;
  const aim = (td, before = "") => {
    if (!td) return;
    if (target) target.classList.remove("target");
    target = td;
    td.classList.add("target");
    td.tabIndex = -1;
    td.focus();
    const taken = td.classList.contains("free") ? "" : ` (${grid.dataset.taken})`;
    say(before + (td.dataset.label || "") + taken);
  };
  const stop = () => {
    if (target) target.classList.remove("target");
    const button = moving && moving.querySelector("button.grab");
    moving = null;
    target = null;
    if (button) button.focus();
  };
  grid.querySelectorAll("button.grab").forEach((button) => {
    button.hidden = false;
    button.addEventListener("click", () => {
      moving = button.closest("li.appt");
      aim(moving.closest("td"), `${grid.dataset.moving.replace("{who}", moving.dataset.who)} `);
    });
  });
  grid.addEventListener("keydown", (event) => {
    if (!moving || !target) return;
    const col = Number(target.dataset.col);
    const top = Number(target.dataset.row);
    const steps = { ArrowUp: [0, -1], ArrowDown: [0, target.rowSpan], ArrowLeft: [-1, 0], ArrowRight: [1, 0] };
    if (event.key in steps) {
      event.preventDefault();
      const [dc, dr] = steps[event.key];
      aim(cells.get(`${col + dc}:${top + dr}`));
    } else if (event.key === "Enter") {
      event.preventDefault();
      if (target.dataset.start) moveTo(moving, target);
    } else if (event.key === "Escape") {
      event.preventDefault();
      say(grid.dataset.cancelled);
      stop();
    }
  });
})();
