// Page module for run-page.test.ts: fails before it can report anything.
throw new Error('the page threw on purpose');
