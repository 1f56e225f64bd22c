from soma_audit.cli import program

program()
