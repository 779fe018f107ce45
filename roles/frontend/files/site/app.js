/* Demo page of the dockerlab.ecommerce lab: plain JavaScript, no framework.
 * Talks to the API gateway through /api/ on the same host (the load balancer).
 * Element ids are listed at the top of index.html. */
(function () {
  'use strict';

  var API = '/api';
  var MARKER = '@@' + 'WEB_SERVER_NAME' + '@@'; // split: the web server rewrites the literal

  function $(id) { return document.getElementById(id); }

  function newKey() {
    if (window.crypto && typeof window.crypto.randomUUID === 'function') {
      return window.crypto.randomUUID();
    }
    var bytes = new Uint8Array(16);
    if (window.crypto && window.crypto.getRandomValues) {
      window.crypto.getRandomValues(bytes);
    } else {
      for (var i = 0; i < 16; i++) { bytes[i] = Math.floor(Math.random() * 256); }
    }
    return Array.prototype.map.call(bytes, function (b) {
      return ('0' + b.toString(16)).slice(-2);
    }).join('');
  }

  /* fetch wrapper: resolves to {ok, status, data, text, headers}; never rejects. */
  function request(method, path, body, extraHeaders) {
    var headers = { 'Accept': 'application/json' };
    if (body !== undefined) { headers['Content-Type'] = 'application/json'; }
    Object.keys(extraHeaders || {}).forEach(function (k) { headers[k] = extraHeaders[k]; });
    return fetch(path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store'
    }).then(function (res) {
      return res.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        return { ok: res.ok, status: res.status, data: data, text: text, headers: res.headers };
      });
    }, function (err) {
      return { ok: false, status: 0, data: null, text: String(err), headers: null };
    });
  }

  /* A readable sentence for an API error ({"error", "field"}) or a network failure. */
  function errorText(res) {
    if (res.status === 0) { return 'Network error: ' + res.text; }
    var d = res.data;
    var msg = null;
    if (d && typeof d === 'object') {
      msg = d.error || d.message || d.detail || null;
      if (msg && typeof msg === 'object') { msg = JSON.stringify(msg); }
      if (msg && d.field) { msg += ' (field: ' + d.field + ')'; }
    }
    if (!msg) { msg = (res.text || '').replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 200) || 'no details'; }
    return 'Error ' + res.status + ': ' + msg;
  }

  function show(el, state, summary, data) {
    el.className = 'result ' + (state === 'pending' ? '' : state);
    el.setAttribute('data-state', state);
    el.textContent = '';
    var p = document.createElement('div');
    p.className = 'summary';
    p.textContent = summary;
    el.appendChild(p);
    if (data !== undefined && data !== null) {
      var pre = document.createElement('pre');
      pre.textContent = typeof data === 'string' ? data : JSON.stringify(data, null, 2);
      el.appendChild(pre);
    }
  }

  function busy(button, on) { if (button) { button.disabled = !!on; } }

  /* Objects may come bare or wrapped ({"user": {...}}, {"data": {...}}). */
  function unwrap(data, key) {
    if (data && typeof data === 'object' && !Array.isArray(data)) {
      if (data[key] && typeof data[key] === 'object' && !Array.isArray(data[key])) { return data[key]; }
      if (data.data && typeof data.data === 'object' && !Array.isArray(data.data)) { return data.data; }
    }
    return data;
  }

  /* Lists may come bare or wrapped ({"users": [...]}, {"items": [...]}, {"data": [...]}). */
  function listOf(data, key) {
    if (Array.isArray(data)) { return data; }
    if (data && typeof data === 'object') {
      var keys = [key, 'items', 'data', 'results'];
      for (var i = 0; i < keys.length; i++) {
        if (Array.isArray(data[keys[i]])) { return data[keys[i]]; }
      }
    }
    return [];
  }

  function idOf(obj, kind) {
    if (!obj || typeof obj !== 'object') { return null; }
    var v = obj.id;
    if (v === undefined || v === null) { v = obj[kind + '_id']; }
    return v === undefined ? null : v;
  }

  function money(v) {
    var n = Number(v);
    return isFinite(n) ? n.toFixed(2) : String(v);
  }

  // ---- which web server served the page --------------------------------

  function showServedBy() {
    var el = $('served-by');
    if (el.textContent.indexOf(MARKER) === -1 && el.textContent.trim() !== '') { return; }
    askWhoAmI();
  }

  function askWhoAmI() {
    var detail = $('served-by-detail');
    request('GET', '/whoami').then(function (res) {
      var name = (res.data && res.data.server) ||
        (res.headers && res.headers.get('X-Served-By')) || null;
      if (name) {
        if ($('served-by').textContent.indexOf(MARKER) !== -1) { $('served-by').textContent = name; }
        var upstream = res.headers && res.headers.get('X-Upstream');
        detail.textContent = '(just asked: ' + name + (upstream ? ' at ' + upstream : '') + ')';
      } else {
        if ($('served-by').textContent.indexOf(MARKER) !== -1) { $('served-by').textContent = 'unknown'; }
        detail.textContent = '(' + errorText(res) + ')';
      }
    });
  }

  // ---- health and status ------------------------------------------------

  function healthButton(buttonId, service) {
    var button = $(buttonId);
    var out = $(buttonId + '-result');
    button.addEventListener('click', function () {
      busy(button, true);
      show(out, 'pending', 'Checking ' + service + '...');
      request('GET', API + '/' + service + '/health').then(function (res) {
        busy(button, false);
        if (res.ok && res.data) {
          var st = res.data.status || 'unknown';
          var name = res.data.service || service;
          show(out, st === 'healthy' ? 'ok' : 'error', name + ': ' + st, res.data);
        } else {
          show(out, 'error', service + ': ' + errorText(res), res.data || undefined);
        }
      });
    });
  }

  function systemStatus() {
    var button = $('system-status');
    var out = $('system-status-result');
    button.addEventListener('click', function () {
      busy(button, true);
      show(out, 'pending', 'Asking the gateway...');
      request('GET', API + '/system/status').then(function (res) {
        busy(button, false);
        if (res.ok && res.data) {
          var services = res.data.services || {};
          var parts = Object.keys(services).map(function (k) {
            var s = services[k];
            var st = (s && typeof s === 'object') ? (s.status || JSON.stringify(s)) : String(s);
            return k + ' ' + st;
          });
          var gateway = res.data.gateway || 'unknown';
          var allHealthy = gateway === 'healthy' && Object.keys(services).every(function (k) {
            var s = services[k];
            return ((s && typeof s === 'object') ? s.status : s) === 'healthy';
          });
          show(out, allHealthy ? 'ok' : 'error',
            'System status: gateway ' + gateway + (parts.length ? '; ' + parts.join(', ') : ''),
            res.data);
        } else {
          show(out, 'error', 'System status: ' + errorText(res), res.data || undefined);
        }
      });
    });
  }

  // ---- lists ---------------------------------------------------------------

  var LISTS = {
    users: {
      list: 'users-list',
      describe: function (u) {
        return '#' + idOf(u, 'user') + ' ' + (u.name || '') + (u.email ? ' <' + u.email + '>' : '');
      }
    },
    orders: {
      list: 'orders-list',
      describe: function (o) {
        var items = Array.isArray(o.items) ? o.items.map(function (it) {
          return (it.quantity || 1) + ' x ' + (it.name || it.item_name || '?');
        }).join(', ') : '';
        var total = o.total !== undefined ? o.total : (o.total_amount !== undefined ? o.total_amount : o.amount);
        return '#' + idOf(o, 'order') + ' user ' + (o.user_id !== undefined ? o.user_id : '?') +
          (items ? ': ' + items : '') + (total !== undefined ? ' = ' + money(total) : '') +
          (o.status ? ' [' + o.status + ']' : '');
      }
    },
    payments: {
      list: 'payments-list',
      describe: function (p) {
        return '#' + idOf(p, 'payment') + ' order ' + (p.order_id !== undefined ? p.order_id : '?') +
          (p.amount !== undefined ? ' ' + money(p.amount) : '') +
          (p.method ? ' by ' + p.method : '') + (p.status ? ' [' + p.status + ']' : '');
      }
    }
  };

  function refresh(kind) {
    var spec = LISTS[kind];
    var ul = $(spec.list);
    var button = $(kind + '-refresh');
    busy(button, true);
    return request('GET', API + '/' + kind + '/').then(function (res) {
      busy(button, false);
      ul.textContent = '';
      if (!res.ok) {
        var li = document.createElement('li');
        li.className = 'error';
        li.textContent = errorText(res);
        ul.appendChild(li);
        ul.setAttribute('data-state', 'error');
        return;
      }
      var rows = listOf(res.data, kind);
      if (!rows.length) {
        var empty = document.createElement('li');
        empty.className = 'empty';
        empty.textContent = 'none yet';
        ul.appendChild(empty);
      }
      rows.forEach(function (row) {
        var li = document.createElement('li');
        var id = idOf(row, kind.slice(0, -1));
        if (id !== null) { li.setAttribute('data-id', String(id)); }
        li.textContent = spec.describe(row);
        ul.appendChild(li);
      });
      ul.setAttribute('data-state', 'ok');
      ul.setAttribute('data-count', String(rows.length));
    });
  }

  // ---- forms -----------------------------------------------------------------

  function value(id) { return $(id).value.trim(); }

  function localError(out, message, field) {
    show(out, 'error', 'Error: ' + message + (field ? ' (field: ' + field + ')' : ''));
  }

  function userForm() {
    var form = $('user-form');
    var out = $('user-result');
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var body = { name: value('user-name'), email: value('user-email') };
      if (!body.name) { return localError(out, 'a name is required', 'name'); }
      if (!body.email) { return localError(out, 'an email is required', 'email'); }
      busy($('user-submit'), true);
      show(out, 'pending', 'Creating the user...');
      request('POST', API + '/users/', body).then(function (res) {
        busy($('user-submit'), false);
        if (res.ok) {
          var user = unwrap(res.data, 'user');
          var id = idOf(user, 'user');
          out.setAttribute('data-id', id === null ? '' : String(id));
          show(out, 'ok', 'Created user #' + id, res.data);
          if (id !== null) { $('order-user-id').value = id; }
          refresh('users');
        } else {
          show(out, 'error', errorText(res), res.data || undefined);
        }
      });
    });
  }

  function orderForm() {
    var form = $('order-form');
    var out = $('order-result');
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var userId = parseInt(value('order-user-id'), 10);
      var quantity = parseInt(value('order-quantity'), 10);
      var unitPrice = Number(value('order-unit-price'));
      var name = value('order-item-name');
      if (!(userId > 0)) { return localError(out, 'a user id is required', 'user_id'); }
      if (!name) { return localError(out, 'an item name is required', 'items[0].name'); }
      if (!(quantity > 0)) { return localError(out, 'the quantity must be a positive whole number', 'items[0].quantity'); }
      if (value('order-unit-price') === '' || !isFinite(unitPrice) || unitPrice < 0) {
        return localError(out, 'the unit price must be a number of 0 or more', 'items[0].unit_price');
      }
      var body = { user_id: userId, items: [{ name: name, quantity: quantity, unit_price: unitPrice }] };
      busy($('order-submit'), true);
      show(out, 'pending', 'Creating the order...');
      request('POST', API + '/orders/', body).then(function (res) {
        busy($('order-submit'), false);
        if (res.ok) {
          var order = unwrap(res.data, 'order');
          var id = idOf(order, 'order');
          out.setAttribute('data-id', id === null ? '' : String(id));
          var total = order && (order.total !== undefined ? order.total : order.total_amount);
          if (total === undefined || total === null) { total = quantity * unitPrice; }
          show(out, 'ok', 'Created order #' + id + ' (total ' + money(total) + ')', res.data);
          if (id !== null) { $('payment-order-id').value = id; }
          $('payment-amount').value = money(total);
          refresh('orders');
        } else {
          show(out, 'error', errorText(res), res.data || undefined);
        }
      });
    });
  }

  function paymentForm() {
    var form = $('payment-form');
    var out = $('payment-result');
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var orderId = parseInt(value('payment-order-id'), 10);
      var amount = Number(value('payment-amount'));
      if (!(orderId > 0)) { return localError(out, 'an order id is required', 'order_id'); }
      if (value('payment-amount') === '' || !isFinite(amount) || amount <= 0) {
        return localError(out, 'the amount must be a positive number', 'amount');
      }
      var body = { order_id: orderId, amount: amount, method: $('payment-method').value };
      var key = newKey(); // one per submit: a retried request is not charged twice
      out.setAttribute('data-idempotency-key', key);
      busy($('payment-submit'), true);
      show(out, 'pending', 'Paying...');
      request('POST', API + '/payments/', body, { 'Idempotency-Key': key }).then(function (res) {
        busy($('payment-submit'), false);
        if (res.ok) {
          var payment = unwrap(res.data, 'payment');
          var id = idOf(payment, 'payment');
          out.setAttribute('data-id', id === null ? '' : String(id));
          show(out, 'ok', 'Created payment #' + id + (payment && payment.status ? ' [' + payment.status + ']' : ''), res.data);
          refresh('payments');
          refresh('orders');
        } else {
          show(out, 'error', errorText(res), res.data || undefined);
        }
      });
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    showServedBy();
    $('served-by-refresh').addEventListener('click', askWhoAmI);
    healthButton('health-user', 'users');
    healthButton('health-order', 'orders');
    healthButton('health-payment', 'payments');
    systemStatus();
    userForm();
    orderForm();
    paymentForm();
    Object.keys(LISTS).forEach(function (kind) {
      $(kind + '-refresh').addEventListener('click', function () { refresh(kind); });
      refresh(kind);
    });
    document.body.setAttribute('data-ready', 'true');
  });
}());
