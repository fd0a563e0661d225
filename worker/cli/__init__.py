"""`rota`, the command line: main.py builds the parser and wires the command
groups (one module each); command.py, output.py and flags.py hold what they
share."""
