// Opens a freelunch report.html in a real browser (Debian's headless
// Chromium through playwright-core) and prints, as one JSON object, what a
// reader would see: how many figures and images it has, how many of the
// images the browser decoded (an embedded SVG that fails to parse has
// naturalWidth 0), the summary's figures, the top-level headings in order, whether the Summary
// fits in the first screen, and the page's rendered size. Saves a full-page
// screenshot. tests/cli_study.sh asserts on the result.
//   node report_browser.mjs REPORT.html SCREENSHOT.png
import { chromium } from 'playwright-core';

const [report, shot] = process.argv.slice(2);
if (!report || !shot) {
  console.error('usage: node report_browser.mjs REPORT.html SCREENSHOT.png');
  process.exit(2);
}
const W = 1280, H = 900;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // root in a container: Chromium's sandbox needs user namespaces it may not have
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const page = await browser.newPage({ viewport: { width: W, height: H } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto('file://' + report, { waitUntil: 'load' });
  // every image decoded, or its failure known
  await page.evaluate(() => Promise.all([...document.images].map((i) => i.decode().catch(() => null))));
  const r = await page.evaluate((H) => {
    const imgs = [...document.images];
    const h2 = [...document.querySelectorAll('h2')];
    const sum = h2.find((h) => h.textContent.trim() === 'Summary');
    const next = sum ? h2[h2.indexOf(sum) + 1] : null;
    const top = (e) => e.getBoundingClientRect().top + window.scrollY;
    return {
      figures: document.querySelectorAll('figure').length,
      images: imgs.length,
      decoded: imgs.filter((i) => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0).length,
      embedded: imgs.filter((i) => i.src.startsWith('data:image/svg+xml;base64,')).length,
      // the summary's small copies of one figure per claim (class thumb)
      thumbs: imgs.filter((i) => i.classList.contains('thumb')).length,
      thumbs_in_summary: sum && next ? imgs.filter((i) => i.classList.contains('thumb') &&
        top(i) > top(sum) && top(i) < top(next)).length : 0,
      h2: h2.map((h) => h.textContent.trim()),
      summary_top: sum ? top(sum) : -1,
      summary_height: sum && next ? top(next) - top(sum) : -1,
      summary_text: sum && next ? (() => {
        let t = '', e = sum.nextElementSibling;
        while (e && e !== next) { t += e.textContent + '\n'; e = e.nextElementSibling; }
        return t;
      })() : '',
      tables: document.querySelectorAll('table').length,
      width: document.documentElement.scrollWidth,
      height: document.documentElement.scrollHeight,
      viewport: H,
    };
  }, H);
  await page.screenshot({ path: shot, fullPage: true });
  r.errors = errors;
  console.log(JSON.stringify(r));
} finally {
  await browser.close();
}
