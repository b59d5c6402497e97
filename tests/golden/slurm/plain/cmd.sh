python3 /cfs/src/main.py
