"""The Teams edge: the HTTP door and the composition root (`app`), every botbuilder import (`gateway`), the turn
that routes activities to the use cases (`turns`), settings and the turn log. Drives `usecases`."""
