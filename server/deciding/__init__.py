"""The workflow language at run time: deciding a job once its needs have
settled (its `if:`, its matrix, the `${{ }}` in its job-level fields) with
the expression package (server/expressions; its resolve.py renders a
field's value, one bound on work per decision), and the matrix rules
shared with the checks a document gets when it is submitted.

  matrix.py     GitHub's matrix expansion (vectors, include, exclude), combination ids and names
  contexts.py   the contexts a job's expressions read, from what the store keeps
  verdict.py    one job's verdict: skip, fail, run (with its rendered fields) or expand

Nothing here reads or writes Redis: server/store/deciding.py reads the
values, asks for a verdict and hands it to the `decide` script.
"""
