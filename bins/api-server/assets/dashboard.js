// Progressive enhancement: the "Copy" buttons next to values shown once. Without JavaScript
// the value stays selectable in its read-only field.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  if (!field) return;
  try {
    await navigator.clipboard.writeText(field.value);
  } catch (_) {
    field.select();
    document.execCommand("copy");
  }
  button.textContent = "Copied";
});
