"""What is inside a BPF object, read on the host without loading it: its ELF sections and
symbols (pyelftools), its BTF (btf.py), the loader set-up a user gives it (setup.py) and
the object's verdict from its programs' verdicts (verdict.py). Pure, apart from reading
the file.
"""
