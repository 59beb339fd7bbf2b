// Small enhancements for the admin site; every page works without them.
// - forms with data-confirm ask before they are sent;
// - buttons with data-copy copy the value (or text) of the element with that id.
'use strict';

document.addEventListener('submit', (event) => {
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

for (const button of document.querySelectorAll('button[data-copy]')) {
  const source = document.getElementById(button.dataset.copy);
  if (!source || !navigator.clipboard) continue;
  button.hidden = false;
  button.addEventListener('click', async () => {
    const text = 'value' in source ? source.value : source.textContent;
    try {
      await navigator.clipboard.writeText(text.trim());
      button.textContent = 'Copied';
      button.dataset.copied = 'true';
    } catch {
      // Without clipboard access, select the text so that Ctrl+C copies it.
      if (source.select) source.select();
      button.textContent = 'Press Ctrl+C';
    }
  });
}
