"""The LSL boundary: inlets, outlets, the LSL clock and the library configuration; the only
package that imports pylsl."""
