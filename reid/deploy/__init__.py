"""From a trained run to a re-ID service: export (`export.py`, graph in `graph.py`), gallery index (`store.py`,
FAISS in `ann.py`), search (`search.py`, queries in `query.py`, re-ranking from kNN in `rerank_knn.py` with an IVF
index's kNN by GEMMs in `ivf_knn.py`, HTML in `page.py`), and a Ray Serve endpoint (`service.py`, load test in
`loadtest.py`). See docs/deploy.md."""
