"""The course in a classroom: a JupyterHub for a workshop (`make hub`, classroom/hub.py,
classroom/jupyterhub_config.py) and the load test that shows a room of learners can use it."""
