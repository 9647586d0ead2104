"""How the gradients of mu and rho flow in Bayes by Backprop: drawings, tape tables and
the paper's decomposition checked by hand and against torch (see
microbbb/demos/gradient_flow.py)."""

from microbbb.demos.gradient_flow import main

if __name__ == "__main__":
    main()
