// The Pushgateway's web UI, rendered from API v1.
//
// Label names and values, metric names and help texts are whatever a client pushed, so they
// only ever reach the page as text (textContent, text nodes, attribute values), never as markup.
// Nothing here is inline in the HTML, so the page works under `Content-Security-Policy:
// default-src 'self'`.
'use strict';

(() => {
  const BASE = (document.querySelector('meta[name="pushgateway-base"]')?.content ?? '.')
    .replace(/\/+$/, '');
  const AUTO_REFRESH_MS = 10000;
  const TICK_MS = 1000;
  const STORAGE = {
    staleAfter: 'pushgateway.staleAfter',
    autoRefresh: 'pushgateway.autoRefresh',
    expanded: 'pushgateway.expanded',
  };
  const LEGACY_LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
  const GROUP_KEYS = new Set(['labels', 'last_push_successful', 'expiry', 'left_out']);
  const PUSH_TIME = 'push_time_seconds';
  const PUSH_FAILURE_TIME = 'push_failure_time_seconds';

  const $ = (id) => document.getElementById(id);

  const state = {
    groups: [],
    lastBody: null,
    loadedAt: null,
    status: null,
    adminApi: false,
    filter: '',
    staleAfterMs: null,
    staleAfterText: '',
    expanded: new Set(readList('sessionStorage', STORAGE.expanded)),
    autoRefreshTimer: null,
    loading: null,
  };

  // ---- Small helpers ------------------------------------------------------------------------

  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key === 'testid') node.dataset.testid = value;
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  // Storage can be disabled or full (private windows, policies: even reading `localStorage`
  // may throw); the UI then keeps its settings for this page only.
  function storageGet(storage, key) {
    try {
      return window[storage].getItem(key);
    } catch {
      return null;
    }
  }

  function storageSet(storage, key, value) {
    try {
      window[storage].setItem(key, value);
    } catch {
      /* see storageGet */
    }
  }

  function readList(storage, key) {
    try {
      const list = JSON.parse(storageGet(storage, key));
      return Array.isArray(list) ? list : [];
    } catch {
      return [];
    }
  }

  function apiUrl(path) {
    return `${BASE}/${path}`;
  }

  function compareStrings(a, b) {
    return a < b ? -1 : a > b ? 1 : 0;
  }

  function sortedLabelNames(labels) {
    return Object.keys(labels).sort((a, b) => {
      if (a === 'job' || b === 'job') return (b === 'job') - (a === 'job');
      return compareStrings(a, b);
    });
  }

  function formatLabelName(name) {
    return LEGACY_LABEL_NAME.test(name) ? name : quote(name);
  }

  // Escaped as in the text exposition format, so that what is shown can be pasted into a query.
  function quote(text) {
    return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
  }

  function formatLabels(labels) {
    return `{${sortedLabelNames(labels)
      .map((name) => `${formatLabelName(name)}=${quote(labels[name])}`)
      .join(', ')}}`;
  }

  function labelBadge(name, value) {
    const kind = name === 'job' ? 'job' : name === 'instance' ? 'instance' : 'other';
    return h(
      'span',
      { class: `label label-${kind}`, testid: 'label', 'data-name': name },
      h('span', { class: 'label-name', text: formatLabelName(name) }),
      '=',
      h('span', { class: 'label-value', text: quote(value) }),
    );
  }

  // Go's zero time (a family never written by a push) and unparsable times come out as null.
  function parseTime(text) {
    if (typeof text !== 'string') return null;
    const ms = Date.parse(text.replace(/(\.\d{3})\d+/, '$1'));
    return Number.isFinite(ms) && ms > 0 ? ms : null;
  }

  function plural(count, unit) {
    return `${count} ${unit}${count === 1 ? '' : 's'}`;
  }

  function ago(ms, now) {
    const seconds = Math.floor((now - ms) / 1000);
    if (seconds < 5) return 'just now';
    if (seconds < 60) return `${plural(seconds, 'second')} ago`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${plural(minutes, 'minute')} ago`;
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return `${plural(hours, 'hour')} ago`;
    return `${plural(Math.floor(hours / 24), 'day')} ago`;
  }

  // "in 4 minutes", "any moment now" (expiry is at most a second late).
  function until(ms, now) {
    const seconds = Math.floor((ms - now) / 1000);
    if (seconds < 1) return 'any moment now';
    if (seconds < 60) return `in ${plural(seconds, 'second')}`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `in ${plural(minutes, 'minute')}`;
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return `in ${plural(hours, 'hour')}`;
    return `in ${plural(Math.floor(hours / 24), 'day')}`;
  }

  function formatDuration(ms) {
    let rest = Math.max(0, Math.floor(ms / 1000));
    const parts = [];
    for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60]]) {
      if (rest >= size || parts.length) parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
    parts.push(`${rest}s`);
    return parts.join(' ');
  }

  const DURATION_UNITS = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000, w: 604800000 };

  // Prometheus-style durations ("90s", "1h30m"); null for "", undefined for invalid input.
  function parseDuration(text) {
    const trimmed = text.trim();
    if (trimmed === '') return null;
    if (!/^(\d+(\.\d+)?(ms|s|m|h|d|w))+$/.test(trimmed)) return undefined;
    let total = 0;
    for (const [, number, , unit] of trimmed.matchAll(/(\d+(\.\d+)?)(ms|s|m|h|d|w)/g)) {
      total += parseFloat(number) * DURATION_UNITS[unit];
    }
    return total > 0 ? total : undefined;
  }

  function absoluteTime(ms) {
    return new Date(ms).toISOString();
  }

  function timeElement(ms, prefix) {
    if (ms === null) return h('span', { class: 'muted', text: `${prefix} never` });
    return h(
      'span',
      { class: 'muted' },
      `${prefix} `,
      h('time', {
        datetime: absoluteTime(ms),
        title: new Date(ms).toString(),
        'data-since': ms,
        text: ago(ms, Date.now()),
      }),
    );
  }

  // ---- Alerts -------------------------------------------------------------------------------

  function showAlert(source, message) {
    const alerts = $('alerts');
    alerts.querySelector(`[data-source="${source}"]`)?.remove();
    const close = h('button', {
      type: 'button',
      class: 'alert-close',
      'aria-label': 'Dismiss',
      text: '×',
    });
    const alert = h(
      'div',
      { class: 'alert', role: 'alert', testid: 'alert', 'data-source': source },
      h('span', { text: message }),
      close,
    );
    close.addEventListener('click', () => alert.remove());
    alerts.append(alert);
  }

  function clearAlert(source) {
    $('alerts').querySelector(`[data-source="${source}"]`)?.remove();
  }

  async function describeFailure(response) {
    let detail = '';
    try {
      detail = (await response.text()).trim().slice(0, 300);
    } catch {
      /* the status line says enough */
    }
    const status = `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
    if (response.status === 401) {
      return `${status}: the gateway requires authentication; reload the page to log in.`;
    }
    return detail ? `${status}: ${detail}` : status;
  }

  class ApiError extends Error {}

  async function request(method, path) {
    let response;
    try {
      response = await fetch(apiUrl(path), {
        method,
        cache: 'no-store',
        credentials: 'same-origin',
        headers: { Accept: 'application/json' },
      });
    } catch (err) {
      throw new ApiError(`the gateway cannot be reached (${err.message})`);
    }
    if (!response.ok) throw new ApiError(await describeFailure(response));
    return response;
  }

  async function getJSON(path) {
    const response = await request('GET', path);
    const body = await response.text();
    let parsed;
    try {
      parsed = JSON.parse(body);
    } catch {
      throw new ApiError('the gateway answered with invalid JSON');
    }
    if (parsed?.status !== 'success') {
      throw new ApiError(`the gateway answered with an error: ${parsed?.error ?? body.slice(0, 300)}`);
    }
    return { body, data: parsed.data };
  }

  // ---- Data ---------------------------------------------------------------------------------

  function gaugeSeconds(family) {
    const value = parseFloat(family?.metrics?.[0]?.value);
    return Number.isFinite(value) && value > 0 ? value * 1000 : null;
  }

  function groupId(labels) {
    return JSON.stringify(sortedLabelNames(labels).map((name) => [name, labels[name]]));
  }

  function toGroup(raw) {
    const labels = raw.labels || {};
    const families = Object.entries(raw)
      .filter(([name, family]) => !GROUP_KEYS.has(name) && family && typeof family === 'object')
      .map(([name, family]) => ({ name, ...family, metrics: family.metrics || [] }))
      .sort((a, b) => compareStrings(a.name, b.name));
    const names = sortedLabelNames(labels);
    return {
      id: groupId(labels),
      sortKey: Object.keys(labels)
        .sort(compareStrings)
        .flatMap((name) => [name, labels[name]])
        .join('\xff'),
      labels,
      families,
      lastPushOk: raw.last_push_successful !== false,
      expiresAt: parseTime(raw.expiry?.expires_at),
      expireAfter: raw.expiry?.expire_after ?? null,
      leftOut: raw.left_out && typeof raw.left_out === 'object' ? raw.left_out : {},
      pushTime: gaugeSeconds(raw[PUSH_TIME]),
      failureTime: gaugeSeconds(raw[PUSH_FAILURE_TIME]),
      searchText: [
        ...names.flatMap((n) => [n, labels[n], `${formatLabelName(n)}=${quote(labels[n])}`]),
        ...families.map((f) => f.name),
      ]
        .join('\n')
        .toLowerCase(),
    };
  }

  function isStale(group, now) {
    if (state.staleAfterMs === null) return false;
    return group.pushTime === null || now - group.pushTime > state.staleAfterMs;
  }

  // ---- Rendering: groups --------------------------------------------------------------------

  function renderGroups() {
    const list = $('groups');
    list.replaceChildren(...state.groups.map((group, index) => groupCard(group, index)));
    applyFilter();
    updateDeleteAll();
    tick();
  }

  function groupCard(group, index) {
    const bodyId = `group-${index}-body`;
    const expanded = state.expanded.has(group.id);
    const toggle = h(
      'button',
      {
        type: 'button',
        class: 'group-toggle',
        testid: 'group-toggle',
        'aria-expanded': String(expanded),
        'aria-controls': bodyId,
      },
      h('span', { class: 'chevron', 'aria-hidden': 'true' }),
      h(
        'span',
        { class: 'labels' },
        sortedLabelNames(group.labels).map((name) => labelBadge(name, group.labels[name])),
      ),
    );
    const remove = h('button', {
      type: 'button',
      class: 'btn btn-danger btn-sm',
      testid: 'delete-group',
      text: 'Delete group',
      'aria-label': `Delete group ${formatLabels(group.labels)}`,
    });
    const job = group.labels.job ?? '';
    const removeJob = h('button', {
      type: 'button',
      class: 'btn btn-danger btn-sm',
      testid: 'delete-job',
      text: 'Delete job',
      title: `Delete every group of job ${quote(job)}`,
      'aria-label': `Delete every group of job ${quote(job)}`,
      hidden: !state.adminApi,
    });
    const expiry =
      group.expiresAt === null
        ? null
        : h(
            'span',
            {
              class: 'muted',
              testid: 'expiry',
              title: `Deleted when not pushed for ${group.expireAfter}`,
            },
            'expires ',
            h('time', {
              datetime: absoluteTime(group.expiresAt),
              'data-until': group.expiresAt,
              text: until(group.expiresAt, Date.now()),
            }),
          );
    const failed = group.lastPushOk
      ? null
      : h('span', {
          class: 'badge badge-failed',
          testid: 'push-failed',
          text: 'Last push failed',
          title: group.failureTime
            ? `Last failed push: ${new Date(group.failureTime).toString()}`
            : null,
        });
    const leftOutNames = Object.keys(group.leftOut).sort(compareStrings);
    const leftOut = leftOutNames.length
      ? h('span', {
          class: 'badge badge-failed',
          testid: 'left-out',
          text: `${plural(leftOutNames.length, 'metric')} left out`,
          title: leftOutNames
            .map((name) => `${name} is left out of the scrape: ${group.leftOut[name]}`)
            .join('\n'),
        })
      : null;
    const stale = h('span', {
      class: 'badge badge-stale',
      testid: 'stale-badge',
      text: 'Stale',
      hidden: true,
    });
    const body = h('div', { class: 'group-body', id: bodyId, hidden: !expanded });
    const card = h(
      'article',
      {
        class: `card group${group.lastPushOk ? '' : ' is-failed'}`,
        testid: 'group',
        'data-group-id': group.id,
        'aria-label': `Group ${formatLabels(group.labels)}`,
      },
      h(
        'header',
        { class: 'group-header' },
        toggle,
        h(
          'div',
          { class: 'group-meta' },
          failed,
          leftOut,
          stale,
          timeElement(group.pushTime, 'last push'),
          expiry,
          h('span', { class: 'muted', text: plural(group.families.length, 'metric') }),
          remove,
          removeJob,
        ),
      ),
      body,
    );
    if (expanded) body.append(...group.families.map((family) => familyCard(group, family)));

    toggle.addEventListener('click', () => {
      const open = toggle.getAttribute('aria-expanded') !== 'true';
      toggle.setAttribute('aria-expanded', String(open));
      body.hidden = !open;
      if (open && !body.childElementCount) {
        body.append(...group.families.map((family) => familyCard(group, family)));
        tick();
      }
      if (open) state.expanded.add(group.id);
      else state.expanded.delete(group.id);
      saveExpansion();
    });
    remove.addEventListener('click', () => confirmDeleteGroup(group, remove));
    removeJob.addEventListener('click', () => confirmDeleteJob(job));
    return card;
  }

  function familyCard(group, family) {
    const rows = family.metrics.map((metric) => seriesRow(group, family, metric));
    return h(
      'section',
      { class: 'family', testid: 'family', 'data-family': family.name },
      h(
        'header',
        { class: 'family-header' },
        h('h3', { class: 'family-name', testid: 'family-name', text: family.name }),
        family.type
          ? h('span', {
              class: `type type-${String(family.type).toLowerCase()}`,
              text: String(family.type).replace(/_/g, ' ').toLowerCase(),
            })
          : null,
        timeElement(parseTime(family.time_stamp), 'last pushed'),
      ),
      family.help ? h('p', { class: 'help', testid: 'family-help', text: family.help }) : null,
      h(
        'table',
        { class: 'series' },
        h(
          'thead',
          null,
          h('tr', null, h('th', { scope: 'col', text: 'Labels' }), h('th', { scope: 'col', text: 'Value' })),
        ),
        h('tbody', null, rows),
      ),
    );
  }

  // The grouping labels are on every series and already in the group's header, and an empty
  // value is the same as no label; leaving them out keeps the rows readable.
  function seriesLabels(group, metric) {
    const labels = metric.labels || {};
    const shown = sortedLabelNames(labels).filter(
      (name) => labels[name] !== '' && group.labels[name] !== labels[name],
    );
    if (!shown.length) return h('span', { class: 'muted', text: 'no other labels' });
    return shown.map((name) => labelBadge(name, labels[name]));
  }

  function seriesRow(group, family, metric) {
    let value;
    if (metric.quantiles && typeof metric.quantiles === 'object') value = summaryTable(metric);
    else if (Array.isArray(metric.buckets)) value = nativeHistogramTable(metric);
    else if (metric.buckets && typeof metric.buckets === 'object') value = classicHistogramTable(metric);
    else value = scalarValue(family, metric);
    return h(
      'tr',
      { testid: 'series' },
      h('td', { class: 'series-labels' }, seriesLabels(group, metric)),
      h('td', { class: 'series-value' }, value),
    );
  }

  function scalarValue(family, metric) {
    const text = String(metric.value ?? '');
    const node = h('span', { class: 'value', testid: 'value', text });
    if (family.name !== PUSH_TIME && family.name !== PUSH_FAILURE_TIME) return node;
    const seconds = parseFloat(text);
    if (!(seconds > 0)) return node;
    return [node, ' ', h('span', { class: 'muted', text: `(${absoluteTime(seconds * 1000)})` })];
  }

  function numeric(bound) {
    return bound === '+Inf' ? Infinity : bound === '-Inf' ? -Infinity : parseFloat(bound);
  }

  function distributionTable(rows, metric, caption) {
    const counts = rows.map((row) => Math.max(0, parseFloat(row.count) || 0));
    const largest = Math.max(0, ...counts);
    const body = rows.map((row, i) => {
      const bar = h('span', { class: 'bar', 'aria-hidden': 'true' });
      bar.style.width = `${largest > 0 ? (100 * counts[i]) / largest : 0}%`;
      return h(
        'tr',
        null,
        h('th', { scope: 'row', text: row.label }),
        h('td', { class: 'value', text: row.value }),
        h('td', { class: 'bar-cell' }, bar),
      );
    });
    return h(
      'table',
      { class: 'distribution' },
      h('caption', { class: 'visually-hidden', text: caption }),
      h('tbody', null, body),
      h(
        'tfoot',
        null,
        h('tr', null, h('th', { scope: 'row', text: 'Count' }), h('td', { class: 'value', text: String(metric.count ?? '') }), h('td')),
        h('tr', null, h('th', { scope: 'row', text: 'Sum' }), h('td', { class: 'value', text: String(metric.sum ?? '') }), h('td')),
      ),
    );
  }

  function summaryTable(metric) {
    const rows = Object.entries(metric.quantiles)
      .sort(([a], [b]) => numeric(a) - numeric(b))
      .map(([q, v]) => [h('th', { scope: 'row', text: `Quantile ${q}` }), h('td', { class: 'value', text: String(v) })]);
    return h(
      'table',
      { class: 'distribution' },
      h('caption', { class: 'visually-hidden', text: 'Summary' }),
      h('tbody', null, rows.map((cells) => h('tr', null, cells))),
      h(
        'tfoot',
        null,
        h('tr', null, h('th', { scope: 'row', text: 'Count' }), h('td', { class: 'value', text: String(metric.count ?? '') })),
        h('tr', null, h('th', { scope: 'row', text: 'Sum' }), h('td', { class: 'value', text: String(metric.sum ?? '') })),
      ),
    );
  }

  // Bars show the share of each bucket, so cumulative counts are turned into per-bucket ones.
  function classicHistogramTable(metric) {
    let previous = 0;
    const rows = Object.entries(metric.buckets)
      .sort(([a], [b]) => numeric(a) - numeric(b))
      .map(([bound, cumulative]) => {
        const total = parseFloat(cumulative) || 0;
        const row = { label: `≤ ${bound}`, value: String(cumulative), count: total - previous };
        previous = total;
        return row;
      });
    return distributionTable(rows, metric, 'Histogram buckets (cumulative counts)');
  }

  const INTERVAL_BRACKETS = [
    ['(', ']'],
    ['[', ')'],
    ['(', ')'],
    ['[', ']'],
  ];

  function nativeHistogramTable(metric) {
    const rows = metric.buckets
      .filter((bucket) => Array.isArray(bucket) && bucket.length === 4)
      .map(([rule, lower, upper, count]) => {
        const [open, close] = INTERVAL_BRACKETS[rule] ?? INTERVAL_BRACKETS[0];
        return { label: `${open}${lower}, ${upper}${close}`, value: String(count), count: parseFloat(count) };
      });
    return distributionTable(rows, metric, 'Native histogram buckets');
  }

  // ---- Filtering, staleness, times ----------------------------------------------------------

  function applyFilter() {
    const needle = state.filter.trim().toLowerCase();
    const cards = $('groups').children;
    let shown = 0;
    state.groups.forEach((group, i) => {
      const match = needle === '' || group.searchText.includes(needle);
      cards[i].hidden = !match;
      if (match) shown += 1;
    });
    const total = state.groups.length;
    $('group-count').textContent = needle
      ? `${shown} of ${plural(total, 'group')}`
      : `${plural(total, 'group')}`;
    const empty = $('empty');
    empty.hidden = shown > 0;
    empty.textContent = total === 0 ? 'No metrics have been pushed yet.' : 'No group matches the filter.';
  }

  function tick() {
    const now = Date.now();
    for (const node of document.querySelectorAll('time[data-since]')) {
      const text = ago(Number(node.dataset.since), now);
      if (node.textContent !== text) node.textContent = text;
    }
    for (const node of document.querySelectorAll('time[data-until]')) {
      const text = until(Number(node.dataset.until), now);
      if (node.textContent !== text) node.textContent = text;
    }
    const cards = $('groups').children;
    state.groups.forEach((group, i) => {
      const stale = isStale(group, now);
      const card = cards[i];
      card.classList.toggle('is-stale', stale);
      const badge = card.querySelector('[data-testid="stale-badge"]');
      badge.hidden = !stale;
      badge.title = stale ? `No successful push for more than ${state.staleAfterText}` : '';
    });
    if (state.loadedAt !== null) $('updated').textContent = `Updated ${ago(state.loadedAt, now)}`;
    const started = parseTime(state.status?.start_time);
    if (started !== null) $('uptime').textContent = formatDuration(now - started);
  }

  function updateDeleteAll() {
    for (const button of document.querySelectorAll('[data-testid="delete-job"]')) {
      button.hidden = !state.adminApi;
    }
    const button = $('delete-all');
    button.hidden = !state.adminApi;
    button.disabled = state.groups.length === 0;
    $('delete-all-count').textContent = String(state.groups.length);
  }

  // ---- Loading ------------------------------------------------------------------------------

  async function loadMetrics() {
    try {
      const { body, data } = await getJSON('api/v1/metrics');
      clearAlert('metrics');
      state.loadedAt = Date.now();
      if (body !== state.lastBody) {
        state.lastBody = body;
        // Upstream's API lists groups in random order, its page by grouping key: so does this.
        state.groups = (Array.isArray(data) ? data.map(toGroup) : []).sort((a, b) =>
          compareStrings(a.sortKey, b.sortKey),
        );
        forgetExpansionOfDeletedGroups();
        renderGroups();
      }
    } catch (err) {
      showAlert('metrics', `Could not load the metrics: ${err.message}`);
      if (state.lastBody === null) $('group-count').textContent = 'Metrics unavailable';
    }
    tick();
  }

  async function loadStatus() {
    try {
      const { data } = await getJSON('api/v1/status');
      clearAlert('status');
      state.status = data || {};
      state.adminApi = state.status.flags?.['web.enable-admin-api'] === 'true';
      renderStatus();
      updateDeleteAll();
      tick();
    } catch (err) {
      showAlert('status', `Could not load the status: ${err.message}`);
    }
  }

  function saveExpansion() {
    storageSet('sessionStorage', STORAGE.expanded, JSON.stringify([...state.expanded]));
  }

  function forgetExpansionOfDeletedGroups() {
    const present = new Set(state.groups.map((group) => group.id));
    const before = state.expanded.size;
    for (const id of state.expanded) if (!present.has(id)) state.expanded.delete(id);
    if (state.expanded.size !== before) saveExpansion();
  }

  function refresh() {
    if (!state.loading) {
      state.loading = Promise.all([loadMetrics(), loadStatus()]).finally(() => {
        state.loading = null;
      });
    }
    return state.loading;
  }

  // A gateway may apply deletions after answering 202 (upstream does), so the list is reloaded
  // until the change shows, for a short while.
  async function reloadUntil(done) {
    for (let attempt = 0; attempt < 8; attempt += 1) {
      await loadMetrics();
      if (done()) return;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  function setAutoRefresh(on) {
    clearInterval(state.autoRefreshTimer);
    state.autoRefreshTimer = on
      ? setInterval(() => {
          if (!document.hidden) loadMetrics();
        }, AUTO_REFRESH_MS)
      : null;
    storageSet('localStorage', STORAGE.autoRefresh, on ? 'true' : 'false');
  }

  // ---- Rendering: status --------------------------------------------------------------------

  function keyValueRows(object) {
    return Object.keys(object || {})
      .sort(compareStrings)
      .map((key) =>
        h('tr', null, h('th', { scope: 'row', text: key }), h('td', { text: String(object[key]) })),
      );
  }

  function renderStatus() {
    const started = parseTime(state.status.start_time);
    const start = $('start-time');
    start.textContent = state.status.start_time ?? '–';
    if (started !== null) start.title = new Date(started).toString();
    $('build-info').replaceChildren(...keyValueRows(state.status.build_information));
    $('flags').replaceChildren(...keyValueRows(state.status.flags));
  }

  // ---- Deleting -----------------------------------------------------------------------------

  let pendingConfirm = null;

  function askToConfirm(message, action) {
    const dialog = $('confirm-dialog');
    $('confirm-message').replaceChildren(...message);
    pendingConfirm = action;
    dialog.returnValue = '';
    dialog.showModal();
  }

  function groupPath(labels) {
    const parts = [`job@base64/${base64Url(labels.job ?? '')}=`];
    for (const name of sortedLabelNames(labels)) {
      if (name !== 'job') parts.push(`${encodeURIComponent(name)}@base64/${base64Url(labels[name])}=`);
    }
    return `metrics/${parts.join('/')}`;
  }

  function base64Url(text) {
    let binary = '';
    for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function confirmDeleteGroup(group, button) {
    askToConfirm(
      ['Delete all metrics of the group ', h('code', { text: formatLabels(group.labels) }), '?'],
      async () => {
        button.disabled = true;
        button.textContent = 'Deleting…';
        try {
          await request('DELETE', groupPath(group.labels));
          clearAlert('delete');
          await reloadUntil(() => !state.groups.some((g) => g.id === group.id));
        } catch (err) {
          showAlert('delete', `Could not delete the group ${formatLabels(group.labels)}: ${err.message}`);
          button.disabled = false;
          button.textContent = 'Delete group';
        }
      },
    );
  }

  function confirmDeleteJob(job) {
    const count = state.groups.filter((g) => (g.labels.job ?? '') === job).length;
    askToConfirm(
      [`Delete all metrics of all ${plural(count, 'group')} of job `, h('code', { text: quote(job) }), '?'],
      async () => {
        // JSON's string syntax is a subset of the selector's.
        const selector = `{job=${JSON.stringify(job)}}`;
        try {
          await request('DELETE', `api/v1/groups?match=${encodeURIComponent(selector)}`);
          clearAlert('delete');
          await reloadUntil(() => !state.groups.some((g) => (g.labels.job ?? '') === job));
        } catch (err) {
          showAlert('delete', `Could not delete the groups of job ${quote(job)}: ${err.message}`);
        }
      },
    );
  }

  function confirmDeleteAll() {
    const count = state.groups.length;
    askToConfirm([`Delete all metrics of all ${plural(count, 'group')}? This cannot be undone.`], async () => {
      try {
        await request('PUT', 'api/v1/admin/wipe');
        clearAlert('delete');
        await reloadUntil(() => state.groups.length === 0);
      } catch (err) {
        showAlert('delete', `Could not delete all groups: ${err.message}`);
      }
    });
  }

  // ---- Tabs ---------------------------------------------------------------------------------

  function showTab(name) {
    $('metrics-view').hidden = name !== 'metrics';
    $('status-view').hidden = name !== 'status';
    for (const link of document.querySelectorAll('a[data-tab]')) {
      if (link.dataset.tab === name) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    document.title = name === 'status' ? 'Status – Pushgateway' : 'Pushgateway';
  }

  function tabFromLocation() {
    return /\/status\/?$/.test(window.location.pathname) ? 'status' : 'metrics';
  }

  // ---- Wiring -------------------------------------------------------------------------------

  function setStaleAfter(text, persist) {
    const input = $('stale-after');
    const parsed = parseDuration(text);
    if (parsed === undefined) {
      input.setAttribute('aria-invalid', 'true');
      return;
    }
    input.removeAttribute('aria-invalid');
    state.staleAfterMs = parsed;
    state.staleAfterText = text.trim();
    if (persist) storageSet('localStorage', STORAGE.staleAfter, text.trim());
    tick();
  }

  function init() {
    for (const link of document.querySelectorAll('a[data-tab]')) {
      link.addEventListener('click', (event) => {
        if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
        event.preventDefault();
        if (tabFromLocation() !== link.dataset.tab) window.history.pushState(null, '', link.href);
        showTab(link.dataset.tab);
      });
    }
    window.addEventListener('popstate', () => showTab(tabFromLocation()));
    showTab(tabFromLocation());

    const filter = $('filter');
    // WebDriver's clear and some autofill paths fire only 'change', typing fires 'input'.
    for (const type of ['input', 'change']) {
      filter.addEventListener(type, () => {
        if (state.filter === filter.value) return;
        state.filter = filter.value;
        applyFilter();
      });
    }
    document.addEventListener('keydown', (event) => {
      const typing = event.target.closest?.('input, textarea, select, dialog');
      if (event.key === '/' && !typing) {
        event.preventDefault();
        filter.focus();
      }
    });

    const staleAfter = $('stale-after');
    staleAfter.value = storageGet('localStorage', STORAGE.staleAfter) ?? staleAfter.value;
    setStaleAfter(staleAfter.value, false);
    staleAfter.addEventListener('input', () => setStaleAfter(staleAfter.value, true));

    const autoRefresh = $('auto-refresh');
    autoRefresh.checked = storageGet('localStorage', STORAGE.autoRefresh) === 'true';
    setAutoRefresh(autoRefresh.checked);
    autoRefresh.addEventListener('change', () => setAutoRefresh(autoRefresh.checked));

    $('refresh').addEventListener('click', refresh);
    $('delete-all').addEventListener('click', confirmDeleteAll);
    for (const [id, open] of [['expand-all', true], ['collapse-all', false]]) {
      $(id).addEventListener('click', () => {
        for (const toggle of $('groups').querySelectorAll('article:not([hidden]) [data-testid="group-toggle"]')) {
          if ((toggle.getAttribute('aria-expanded') === 'true') !== open) toggle.click();
        }
      });
    }

    $('confirm-dialog').addEventListener('close', () => {
      const action = pendingConfirm;
      pendingConfirm = null;
      if (action && $('confirm-dialog').returnValue === 'confirm') action();
    });

    setInterval(tick, TICK_MS);
    refresh();
  }

  init();
})();
