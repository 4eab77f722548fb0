"""The shared core every stage imports: the report contract, the finding record and its catalogue,
the grade order, the one summary every output agrees on, and the text helpers that make remote
bytes safe to show.

Nothing here imports a stage; every stage imports only from here and from the stage before it.
"""
