import{a1 as i}from"./admin-BtZSU95A.js";const n=o=>["",...i].includes(o);export{n as i};
