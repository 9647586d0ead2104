"""A learner's hand-written BBB loss and gradients, in the dict form check_gradients takes,
written from the formulas of by_hand's docstring, with switches that plant the usual mistakes.

``learner(model, mistakes)`` returns ``mine(x, y, mu, rho, eps)``; ``mistakes`` is a set of
names (see MISTAKES). The model is only read for its prior, likelihood and sizes.
"""

import math

import numpy as np

MISTAKES = {
    "product",  # f = log q - log P(w) * log P(D|w)
    "own_noise",  # eps drawn by the function itself
    "eps_0.1",  # eps scaled by 0.1 (drawn from N(0, 0.1))
    "log_2pi",  # log(2 pi) in place of 0.5 log(2 pi) in every Gaussian log-density
    "no_chain",  # df/dw where df/dw * eps * sigmoid(rho) belongs
    "sigma_slope",  # sigma where sigmoid(rho) belongs, in the pathwise part
    "no_direct",  # log q's direct terms forgotten
    "no_q_through_w",  # log q's through-w part forgotten
    "prior_sign",  # + log P(w)
    "no_weight",  # complexity weight c left out
    "sum_samples",  # sum over samples, not mean
    "flip",  # the whole gradient's sign flipped
    "softmax_one",  # a softmax over the single output: log-likelihood 0
}


def softplus(x):
    return np.logaddexp(0.0, x)


def sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))


def learner(model, mistakes=(), c=1.0, kl="mc", return_parts=False):
    mistakes = set(mistakes)
    assert mistakes <= MISTAKES, mistakes - MISTAKES
    prior, likelihood = model.prior, model.likelihood
    kind = type(likelihood).__name__
    n_layers = len(model.layers)
    const = math.log(2 * math.pi) if "log_2pi" in mistakes else 0.5 * math.log(2 * math.pi)
    weight = 1.0 if "no_weight" in mistakes else c

    def log_normal(x, m, s):
        return -0.5 * ((x - m) / s) ** 2 - np.log(s) - const

    def prior_and_dw(w):
        if hasattr(prior, "pi"):
            a = math.log(prior.pi) + log_normal(w, 0.0, prior.sigma1)
            b = math.log(1 - prior.pi) + log_normal(w, 0.0, prior.sigma2)
            r = sigmoid(a - b)
            return np.logaddexp(a, b).sum(), -w * (r / prior.sigma1**2 + (1 - r) / prior.sigma2**2)
        return log_normal(w, 0.0, prior.sigma).sum(), -w / prior.sigma**2

    def mine(x, y, mu, rho, eps):
        names = [f"layer{i + 1}.{k}" for i in range(n_layers) for k in ("weight", "bias")]
        sigma = {k: softplus(rho[k]) for k in names}
        if "own_noise" in mistakes:
            rng = np.random.default_rng()
            eps = [{k: rng.standard_normal(mu[k].shape) for k in names} for _ in eps]
        if "eps_0.1" in mistakes:
            eps = [{k: 0.1 * e[k] for k in names} for e in eps]
        n = len(eps)
        loss = 0.0
        dmu = {k: np.zeros_like(mu[k]) for k in names}
        drho = {k: np.zeros_like(rho[k]) for k in names}
        parts = {
            p: ({k: np.zeros_like(mu[k]) for k in names}, {k: np.zeros_like(mu[k]) for k in names})
            for p in ("data", "log_q_through_w", "log_q_direct", "log_prior")
        }
        d_noise = 0.0
        for e in eps:
            w = {k: mu[k] + sigma[k] * e[k] for k in names}
            hs, pre = [x], []
            for i in range(n_layers):
                a = hs[-1] @ w[f"layer{i + 1}.weight"] + w[f"layer{i + 1}.bias"]
                pre.append(a)
                hs.append(np.maximum(a, 0.0) if i < n_layers - 1 else a)
            out = hs[-1]
            if kind == "Gaussian":
                s_n = softplus(rho["noise_rho"]) if "noise_rho" in rho else likelihood.sigma
                yy = y.reshape(out.shape)
                ll = log_normal(yy, out, s_n).sum()
                dout = (yy - out) / s_n**2
                d_sn = ((yy - out) ** 2 / s_n**3 - 1 / s_n).sum()
            elif kind == "Bernoulli":
                logit = out[:, 0]
                if "softmax_one" in mistakes:
                    ll, dout = 0.0, np.zeros_like(out)
                else:
                    ll = (y * logit - softplus(logit)).sum()
                    dout = (y - sigmoid(logit))[:, None]
            else:
                m = out.max(axis=1, keepdims=True)
                ls = out - m - np.log(np.exp(out - m).sum(axis=1, keepdims=True))
                onehot = np.eye(out.shape[1])[y]
                ll = ls[np.arange(len(y)), y].sum()
                dout = onehot - np.exp(ls)
            # backprop of -ll
            delta = -dout
            data_dw = {}
            for i in reversed(range(n_layers)):
                data_dw[f"layer{i + 1}.weight"] = hs[i].T @ delta
                data_dw[f"layer{i + 1}.bias"] = delta.sum(axis=0)
                if i > 0:
                    delta = (delta @ w[f"layer{i + 1}.weight"].T) * (pre[i - 1] > 0)
            lq = kl_value = 0.0
            priors = {k: prior_and_dw(w[k]) for k in names}
            lp = sum(p for p, _ in priors.values())
            for k in names:
                s, slope = sigma[k], sigmoid(rho[k])
                if kl == "mc":
                    lq += log_normal(w[k], mu[k], s).sum()
                    dp_dw = priors[k][1]
                    dq_dw = -(w[k] - mu[k]) / s**2
                    dq_dmu = (w[k] - mu[k]) / s**2
                    dq_dsigma = (w[k] - mu[k]) ** 2 / s**3 - 1 / s
                    if "no_direct" in mistakes:
                        dq_dmu, dq_dsigma = 0.0 * dq_dmu, 0.0 * dq_dsigma
                    if "no_q_through_w" in mistakes:
                        dq_dw = 0.0 * dq_dw
                    prior_sign = 1.0 if "prior_sign" in mistakes else -1.0
                    df_dw = data_dw[k] + weight * (dq_dw + prior_sign * dp_dw)
                    if "product" in mistakes:  # d(c lq - c lp ll)/dw, by the product rule
                        df_dw = weight * (dq_dw - ll * dp_dw + lp * data_dw[k])
                    direct_mu, direct_sigma = weight * dq_dmu, weight * dq_dsigma
                    for p_name, g in (
                        ("data", data_dw[k]),
                        ("log_q_through_w", weight * dq_dw),
                        ("log_prior", weight * prior_sign * dp_dw),
                    ):
                        parts[p_name][0][k] += g / n
                        parts[p_name][1][k] += g * e[k] * slope / n
                    parts["log_q_direct"][0][k] += direct_mu / n
                    parts["log_q_direct"][1][k] += direct_sigma * slope / n
                else:
                    s0 = prior.sigma
                    kl_value += (
                        math.log(s0) - np.log(s) + (s**2 + mu[k] ** 2) / (2 * s0**2) - 0.5
                    ).sum()
                    df_dw = data_dw[k]
                    direct_mu = weight * mu[k] / s0**2
                    direct_sigma = weight * (-1 / s + s / s0**2)
                chain = e[k] * slope
                if "no_chain" in mistakes:
                    chain = 1.0
                if "sigma_slope" in mistakes:
                    chain = e[k] * s
                dmu[k] += (df_dw + direct_mu) / n
                drho[k] += (df_dw * chain + direct_sigma * slope) / n
            if kl == "mc":
                prior_sign = 1.0 if "prior_sign" in mistakes else -1.0
                if "product" in mistakes:
                    f = weight * lq - weight * lp * ll
                else:
                    f = weight * (lq + prior_sign * lp) - ll
            else:
                f = weight * kl_value - ll
            loss += f / n
            d_noise += d_sn / n if kind == "Gaussian" else 0.0
        if "noise_rho" in rho:
            drho["noise_rho"] = np.asarray(-d_noise * sigmoid(rho["noise_rho"]))
        scale = n if "sum_samples" in mistakes else 1.0
        sign = -1.0 if "flip" in mistakes else 1.0
        dmu = {k: sign * scale * v for k, v in dmu.items()}
        drho = {k: sign * scale * v for k, v in drho.items()}
        loss = sign * scale * loss
        if return_parts:
            return loss, dmu, drho, parts
        return loss, dmu, drho

    return mine
