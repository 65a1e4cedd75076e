// Drives the web console in Firefox over WebDriver BiDi, for TestFirefox
// (../../firefox_test.go): signs in with the form, opens the clusters, the
// cluster and a service page, prints {"stage":"ready",...} and waits for a
// live update to change the service's running count without a reload,
// then prints {"stage":"done",...}. Every line on stdout is one JSON
// object; a failure prints {"stage":"error","error":...} and exits 1.
//
// usage: node console.mjs CONFIG_JSON
//   {"url","keyId","secret","cluster","service","firefox","wantRunning"}
import puppeteer from 'puppeteer-core';

const cfg = JSON.parse(process.argv[2]);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const text = (page, sel) => page.$eval(sel, (e) => e.textContent.trim());

let browser;
try {
  browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: cfg.firefox,
    headless: true,
    // The profile lives in the test's directory, not in $HOME.
    userDataDir: cfg.profile,
    defaultViewport: { width: 1280, height: 800 },
  });
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

  await page.goto(cfg.url + '/console/');
  await page.waitForSelector('#key-id', { visible: true });
  await page.type('#key-id', cfg.keyId);
  await page.type('#secret', cfg.secret);
  await Promise.all([page.waitForNavigation(), page.click('#signin-button')]);
  await page.waitForSelector('#clusters', { visible: true });
  const clusters = await text(page, '#clusters');

  await Promise.all([page.waitForNavigation(), page.click(`a[href="/console/clusters/${cfg.cluster}"]`)]);
  await page.waitForSelector('#services', { visible: true });
  await Promise.all([page.waitForNavigation(),
    page.click(`a[href="/console/clusters/${cfg.cluster}/services/${cfg.service}"]`)]);
  await page.waitForSelector('#running', { visible: true });
  const runningBefore = await text(page, '#running');
  await page.evaluate(() => { window.berthNoReload = true; });
  out({ stage: 'ready', clusters, runningBefore, userAgent: await browser.userAgent() });

  await page.waitForFunction(
    (want) => document.querySelector('#running')?.textContent.trim() === want,
    { timeout: 30000, polling: 100 }, cfg.wantRunning);
  const runningAfter = await text(page, '#running');
  const noReload = await page.evaluate(() => window.berthNoReload === true);
  out({ stage: 'done', runningAfter, noReload, errors });
  await browser.close();
} catch (e) {
  out({ stage: 'error', error: String(e && e.stack || e) });
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
